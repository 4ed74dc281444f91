"""Netfilter packet log lines: the iptables/nft LOG format, UFW, firewalld and ulogd.

The kernel (``nf_log_syslog``) writes ``<prefix>IN=eth0 OUT= MAC=... SRC=... DST=...
LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=5 DPT=80 WINDOW=64240
RES=0x00 SYN URGP=0 UID=0 GID=0 MARK=0x1``; IPv6 has ``TC HOPLIMIT FLOWLBL``;
ICMP errors carry the offending packet in ``[...]``. ulogd's syslog emulation
writes the same keys; its JSON output uses ``src_ip``/``oob.prefix`` style keys.

:func:`parse_log_line` turns such a text into a :class:`Packet` (None when the
text is not a packet log line, LineError when it is one but is malformed);
:func:`packet_event` makes the Event, classified by its prefix
(:mod:`auditor.parsers.netfilter_prefix`).
``rule.name`` is the prefix with surrounding white space stripped.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from auditor.models import Event, Location
from auditor.parsers.base import LineError
from auditor.parsers.netfilter_prefix import ACTION_TYPES, ACTIONS, classify, classify_cached

__all__ = ["ACTIONS", "ACTION_TYPES", "Packet", "classify", "classify_cached", "packet_event",
           "parse_log_line"]

_START = re.compile(r"IN=(\S*) OUT=(\S*)")
_TCP_FLAGS = frozenset(("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"))
_IP_FLAGS = frozenset(("CE", "DF", "MF"))
_PROTO = {
    "TCP": "tcp", "UDP": "udp", "UDPLITE": "udplite", "ICMP": "icmp", "ICMPv6": "ipv6-icmp",
    "SCTP": "sctp", "DCCP": "dccp", "1": "icmp", "6": "tcp", "17": "udp", "47": "gre",
    "50": "esp", "51": "ah", "58": "ipv6-icmp", "132": "sctp", "136": "udplite",
}
# KEY -> extra name, before and after the PROTO= key.
_L3 = {"LEN": "len", "TOS": "tos", "PREC": "prec", "TTL": "ttl", "ID": "ip_id",
       "TC": "tc", "HOPLIMIT": "hoplimit", "FLOWLBL": "flowlabel", "FRAG": "frag",
       "PHYSIN": "physin", "PHYSOUT": "physout", "MACSRC": "macsrc", "MACDST": "macdst",
       "MACPROTO": "macproto"}
_L4 = {"SEQ": "seq", "ACK": "ack_seq", "WINDOW": "window", "RES": "res", "URGP": "urgp",
       "LEN": "l4_len", "TYPE": "icmp_type", "CODE": "icmp_code", "ID": "icmp_id",
       "MTU": "mtu", "GATEWAY": "gateway", "PARAMETER": "icmp_parameter"}
_COMMON = {"UID": "uid", "GID": "gid", "MARK": "mark"}


@dataclass(frozen=True, slots=True)
class Packet:
    """One logged packet, normalised from any of the log formats."""

    prefix: str
    ingress: str | None = None
    egress: str | None = None
    source_ip: str | None = None
    destination_ip: str | None = None
    source_port: int | None = None
    destination_port: int | None = None
    transport: str | None = None
    source_mac: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def check_ip(value: str, key: str) -> str:
    """A valid IP address in canonical form, or LineError."""
    if _IPV4.fullmatch(value):  # the common case, without ipaddress' cost
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise LineError(f"bad {key} address {value[:60]!r}") from None


def _port(value: str, key: str) -> int:
    if not value.isdecimal() or len(value) > 5 or int(value) > 65535:
        raise LineError(f"bad {key} port {value[:20]!r}")
    return int(value)


def _num(value: str) -> int | str:
    return int(value) if value.isdecimal() and len(value) < 20 else value


def _mac(raw: str) -> tuple[str | None, str | None]:
    """``MAC=dst:src:type`` (14 bytes) -> (source, destination) in ECS form ``AA-BB-...``."""
    parts = raw.split(":")
    if len(parts) < 12:
        return None, None
    dst = "-".join(parts[0:6]).upper()
    src = "-".join(parts[6:12]).upper()
    return src, dst


def _split_tokens(text: str) -> tuple[list[str], list[str]]:
    """White-space tokens outside ``[...]`` and the tokens of the first bracketed packet."""
    if "[" not in text:
        return text.split(), []
    outer: list[str] = []
    inner: list[str] = []
    depth = 0
    for tok in text.split():
        if depth == 0 and not tok.startswith("["):
            outer.append(tok)
            continue
        depth += tok.count("[") - tok.count("]")
        tok = tok.strip("[]")
        if tok:
            inner.append(tok)
        if depth <= 0:
            depth = 0
    return outer, inner


_ADDRESSING = frozenset(("SRC", "DST", "SPT", "DPT", "MAC"))
_BEFORE = {**_L3, **_COMMON}
_AFTER = {**_L3, **_L4, **_COMMON}


def _fields(tokens: list[str], extra: dict[str, Any]) -> dict[str, str]:
    """Walks the tokens; fills ``extra`` and returns the addressing keys."""
    got: dict[str, str] = {}
    names = _BEFORE
    after_proto = False
    tcp_flags: list[str] = []
    ip_flags: list[str] = []
    for tok in tokens:
        eq = tok.find("=")
        if eq < 0:
            if after_proto:
                if tok in _TCP_FLAGS:
                    tcp_flags.append(tok)
            elif tok in _IP_FLAGS:
                ip_flags.append(tok)
            if tok == "INCOMPLETE":
                extra["incomplete"] = True
            continue
        key = tok[:eq]
        value = tok[eq + 1 :]
        if key in _ADDRESSING:
            if key not in got:
                got[key] = value
            continue
        if key == "PROTO":
            after_proto = True
            names = _AFTER
            got["PROTO"] = value
            continue
        name = names.get(key)
        if name is None:
            if not key.isupper():
                continue
            name = key.lower()
            if name in extra:
                continue
        extra[name] = int(value) if value.isdecimal() and len(value) < 20 else value
    if tcp_flags:
        extra["tcp_flags"] = tuple(tcp_flags)
    if ip_flags:
        extra["ip_flags"] = tuple(ip_flags)
    return got


# The common shape that nf_log_syslog writes for IPv4 TCP and UDP, after ``IN= OUT=``:
# read with one match instead of the token walk. Anything else (IPv6, ICMP, bridge
# keys, options, odd spacing) takes the general path; both give the same Packet.
# (ASCII digits only: the kernel writes no others.)
# Addresses are matched as check_ip's canonical IPv4 form, so they need no check after.
# Measured with the kernel parser's own shortcut off: 42 vs 57 us per candidate line.
_V4 = rf"({_OCTET}(?:\.{_OCTET}){{3}})"
FAST_V4 = (
    rf" (?:MAC=([0-9A-Fa-f:]*) )?SRC={_V4} DST={_V4}"
    r" LEN=(\d{1,19})"
    r" TOS=(0x[0-9A-Fa-f]{2}) PREC=(0x[0-9A-Fa-f]{2}) TTL=(\d{1,19}) ID=(\d{1,19})"
    r"((?: (?:CE|DF|MF))*) PROTO=(TCP|UDP)"
    r" SPT=(\d{1,5}) DPT=(\d{1,5})(?:(?: SEQ=(\d{1,19}) ACK=(\d{1,19}))? WINDOW=(\d{1,19})"
    r" RES=(0x[0-9A-Fa-f]{2})((?: (?:CWR|ECE|URG|ACK|PSH|RST|SYN|FIN))*) URGP=(\d{1,19})"
    r"| LEN=(\d{1,19}))(?: UID=(\d{1,19}) GID=(\d{1,19}))?(?: MARK=(0x[0-9A-Fa-f]{1,8}))? ?"
)
_FAST_V4 = re.compile(FAST_V4, re.ASCII)


def _fast_v4(prefix: str, start: re.Match[str], rest: str) -> Packet | None:
    """The Packet of a common-shape IPv4 TCP/UDP text, as the token walk would build it."""
    f = _FAST_V4.fullmatch(rest)
    if f is None:
        return None
    return fast_v4_packet(prefix, start.group(1), start.group(2), f.groups())


def fast_v4_packet(
    prefix: str, ingress: str, egress: str, groups: Sequence[Any]
) -> Packet | None:
    """The Packet from the groups of :data:`FAST_V4`; None sends the text to the token walk."""
    fields = fast_v4_fields(groups)
    if fields is None:
        return None
    extra, source_mac, sport, dport, transport = fields
    return Packet(prefix, ingress or None, egress or None, groups[1], groups[2], sport, dport,
                  transport, source_mac, extra)


def fast_v4_fields(
    groups: Sequence[Any],
) -> tuple[dict[str, Any], str | None, int, int, str] | None:
    """(extra, source MAC, source port, destination port, transport) from :data:`FAST_V4`.

    The addresses are ``groups[1]`` and ``groups[2]``; None: a port out of range.
    """
    (mac, _src, _dst, ip_len, tos, prec, ttl, ip_id, ip_flags, proto, spt, dpt,
     seq, ack, window, res, tcp_flags, urgp, l4_len, uid, gid, mark) = groups
    sport, dport = int(spt), int(dpt)
    if sport > 65535 or dport > 65535:
        return None  # the general path says which one is bad
    extra: dict[str, Any] = {
        "len": int(ip_len), "tos": tos, "prec": prec, "ttl": int(ttl), "ip_id": int(ip_id),
    }
    if window is not None:
        if seq is not None:
            extra["seq"] = int(seq)
            extra["ack_seq"] = int(ack)
        extra["window"] = int(window)
        extra["res"] = res
        extra["urgp"] = int(urgp)
    else:
        extra["l4_len"] = int(l4_len)
    if uid is not None:
        extra["uid"] = int(uid)
        extra["gid"] = int(gid)
    if mark is not None:
        extra["mark"] = mark
    if tcp_flags:
        extra["tcp_flags"] = _flags(tcp_flags)
    if ip_flags:
        extra["ip_flags"] = _flags(ip_flags)
    source_mac = None
    if mac:
        extra["mac"] = mac
        source_mac, dest_mac = _cached_mac(mac)
        if dest_mac:
            extra["mac_dst"] = dest_mac
    return extra, source_mac, sport, dport, "tcp" if proto == "TCP" else "udp"


@lru_cache(maxsize=256)
def _flags(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_cached_mac = lru_cache(maxsize=1024)(_mac)


def parse_log_line(text: str, fast: bool = True) -> Packet | None:
    """A LOG-format text (prefix + keys) -> Packet; None if it has no ``IN= OUT=``.

    ``fast=False`` skips the common-shape shortcut (tests compare both paths).
    """
    m = _START.search(text)
    if m is None:
        return None
    prefix = text[: m.start()]
    rest = text[m.end() :]
    if fast and "[" not in rest:
        packet = _fast_v4(prefix, m, rest)
        if packet is not None:
            return packet
    outer, inner = _split_tokens(rest)
    extra: dict[str, Any] = {}
    got = _fields(outer, extra)
    if inner:
        inner_extra: dict[str, Any] = {}
        inner_got = _fields(inner, inner_extra)
        extra["inner"] = {k.lower(): _num(v) for k, v in inner_got.items()}
    src = check_ip(got["SRC"], "SRC") if "SRC" in got else None
    dst = check_ip(got["DST"], "DST") if "DST" in got else None
    proto = got.get("PROTO")
    transport = _PROTO.get(proto, proto.lower()) if proto else None
    source_mac = None
    if got.get("MAC"):
        extra["mac"] = got["MAC"]
        source_mac, dest_mac = _mac(got["MAC"])
        if dest_mac:
            extra["mac_dst"] = dest_mac
    return Packet(
        prefix=prefix,
        ingress=m.group(1) or None,
        egress=m.group(2) or None,
        source_ip=src,
        destination_ip=dst,
        source_port=_port(got["SPT"], "SPT") if "SPT" in got else None,
        destination_port=_port(got["DPT"], "DPT") if "DPT" in got else None,
        transport=transport,
        source_mac=source_mac,
        extra=extra,
    )


def packet_event(
    packet: Packet,
    *,
    timestamp: datetime,
    location: Location,
    original: str,
    message: str | None = None,
    host: str | None = None,
    relative: bool = False,
    level: str | None = None,
    dataset: str = "netfilter.log",
    extra: Mapping[str, Any] | None = None,
    process: tuple[str | None, int | None] = (None, None),
) -> Event:
    """The Event for one logged packet, classified by its prefix."""
    action, cls_extra = classify_cached(packet.prefix)
    types, outcome = ACTION_TYPES[action]
    network_type = None
    if packet.source_ip is not None:
        network_type = "ipv6" if ":" in packet.source_ip else "ipv4"
    rule = packet.prefix.strip()
    return Event(
        timestamp=timestamp,
        location=location,
        dataset=dataset,
        action=action,
        category=("network",),
        type=types,
        outcome=outcome,
        log_level=level,
        source_ip=packet.source_ip,
        source_port=packet.source_port,
        source_mac=packet.source_mac,
        destination_ip=packet.destination_ip,
        destination_port=packet.destination_port,
        transport=packet.transport,
        network_type=network_type,
        ingress_interface=packet.ingress,
        egress_interface=packet.egress,
        rule_name=rule or None,
        process_name=process[0],
        process_pid=process[1],
        host_name=host,
        message=message,
        original=original,
        time_relative=relative,
        extra={**(extra or {}), **packet.extra, **cls_extra},
    )
