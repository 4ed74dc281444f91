"""ulogd's JSON output (one object per line) -> a firewall Event.

ulogd writes the packet keys it was given, e.g. ``"oob.prefix"``, ``"oob.in"``,
``"src_ip"``/``"dest_ip"`` (or ``"ip.saddr.str"``), ``"src_port"``/``"dest_port"``
(or ``"tcp.sport"``...), ``"ip.protocol"``, ``"tcp.syn"``... and a ``"timestamp"``
(ISO 8601; zone-less stamps take ``ctx.timezone``) or ``"oob.time.sec"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.models import Event, Location
from auditor.parsers import netfilter
from auditor.parsers.base import LineError, ParseContext

_PROTO = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}
_FLAGS = ("cwr", "ece", "urg", "ack", "psh", "rst", "syn", "fin")
_EXTRA = {
    "ip.ttl": "ttl", "ip.totlen": "len", "ip.id": "ip_id", "ip.tos": "tos",
    "ip6.hoplimit": "hoplimit", "ip6.flowlabel": "flowlabel", "tcp.window": "window",
    "tcp.seq": "seq", "tcp.ackseq": "ack_seq", "oob.mark": "mark", "oob.uid": "uid",
    "oob.gid": "gid", "icmp.type": "icmp_type", "icmp.code": "icmp_code",
    "icmpv6.type": "icmp_type", "icmpv6.code": "icmp_code", "udp.len": "l4_len",
    "oob.hook": "hook", "oob.family": "family", "raw.pktlen": "pktlen",
}
_IP_KEYS = (("src_ip", "ip.saddr.str", "ip.saddr"), ("dest_ip", "ip.daddr.str", "ip.daddr"))
_PORT_KEYS = (
    ("src_port", "tcp.sport", "udp.sport", "sctp.sport"),
    ("dest_port", "tcp.dport", "udp.dport", "sctp.dport"),
)


def is_ulogd(obj: Mapping[str, Any]) -> bool:
    return "oob.prefix" in obj or "src_ip" in obj or "ip.saddr.str" in obj


def _first(obj: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None and value != "":
            return value
    return None


def _port(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise LineError("bad port in ulogd JSON")
    text = str(value)
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise LineError(f"bad port {text[:20]!r} in ulogd JSON")
    return int(text)


def _timestamp(obj: Mapping[str, Any], ctx: ParseContext) -> datetime:
    stamp = obj.get("timestamp")
    if isinstance(stamp, str):
        try:
            dt = datetime.fromisoformat(stamp)
        except ValueError:
            raise LineError(f"bad timestamp {stamp[:40]!r}") from None
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=ctx.timezone)
    sec = obj.get("oob.time.sec")
    if isinstance(sec, int) and not isinstance(sec, bool) and 0 <= sec < 1 << 40:
        usec = obj.get("oob.time.usec")
        micro = usec if isinstance(usec, int) and 0 <= usec < 10**6 else 0
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=sec, microseconds=micro)
    raise LineError("ulogd JSON without timestamp")


def ulogd_json_event(
    obj: Mapping[str, Any], ctx: ParseContext, location: Location, line: str
) -> Event:
    """One ulogd JSON object -> Event; LineError when it is not a ulogd packet record."""
    if not is_ulogd(obj):
        raise LineError("JSON object is neither a journal entry nor a ulogd record")
    src = _first(obj, _IP_KEYS[0])
    dst = _first(obj, _IP_KEYS[1])
    src_ip = netfilter.check_ip(str(src), "src_ip") if src is not None else None
    dst_ip = netfilter.check_ip(str(dst), "dest_ip") if dst is not None else None
    proto = obj.get("ip.protocol")
    transport: str | None = None
    if isinstance(proto, int) and not isinstance(proto, bool):
        transport = _PROTO.get(proto, str(proto))
    elif isinstance(proto, str):
        transport = proto.lower()
    extra: dict[str, Any] = {"logger": "ulogd"}
    for key, name in _EXTRA.items():
        value = obj.get(key)
        if isinstance(value, int | str) and not isinstance(value, bool):
            extra[name] = value
    flags = tuple(f.upper() for f in _FLAGS if obj.get(f"tcp.{f}") in (1, True, "1"))
    if flags:
        extra["tcp_flags"] = flags
    mac = obj.get("mac.saddr.str")
    prefix = obj.get("oob.prefix")
    packet = netfilter.Packet(
        prefix=prefix if isinstance(prefix, str) else "",
        ingress=str(obj["oob.in"]) if obj.get("oob.in") else None,
        egress=str(obj["oob.out"]) if obj.get("oob.out") else None,
        source_ip=src_ip,
        destination_ip=dst_ip,
        source_port=_port(_first(obj, _PORT_KEYS[0])),
        destination_port=_port(_first(obj, _PORT_KEYS[1])),
        transport=transport,
        source_mac=mac.replace(":", "-").upper() if isinstance(mac, str) and mac else None,
        extra=extra,
    )
    return netfilter.packet_event(
        packet,
        timestamp=_timestamp(obj, ctx),
        location=location,
        original=line,
        host=ctx.host_name,
        dataset="netfilter.ulogd",
    )
