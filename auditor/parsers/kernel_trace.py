"""Kernel trace records (``trace/kernel-trace.jsonl``) -> Events named by the kernel's reason.

Each line is one JSON object the recorder (:mod:`auditor.sources.trace_record`)
wrote: ``{"kernel-trace": <tracepoint>, "time": <ISO>, "raw": <kernel text line>,
"cgroup": <path, optional>}``. The raw line is the kernel's own rendering, e.g.::

    python3-15231 [001] ..... 319.869568: tcp_send_reset: skbaddr=0 skaddr=ffff
      src=127.0.0.1:9200 dest=127.0.0.1:52904 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE

``tcp_send_reset`` becomes ``kernel-reset-<reason>`` (a reset this host sent), with the
local side as destination (the service's port) and the peer as source. The process is
named only when the kernel ran the record in that process's own context (``close()``,
``setsockopt``): a record made in a softirq shows whichever task was interrupted, so it
names nobody. ``kfree_skb`` becomes ``kernel-drop-<reason>``, ``tcp_receive_reset``
``kernel-reset-received``. Reasons the vocabulary does not know keep their name in
``auditor.reason`` under ``kernel-reset-other`` / ``kernel-drop-other``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from auditor.models import Event, Location
from auditor.parsers.base import LineError, LineParser

RECORD_KEY = "kernel-trace"
DATASET = "kernel.trace"
RESET_ACTIONS = {
    "NO_SOCKET": "kernel-reset-no-socket",
    "TCP_ABORT_ON_CLOSE": "kernel-reset-abort-on-close",
    "TCP_ABORT_ON_LINGER": "kernel-reset-abort-on-linger",
    "TCP_ABORT_ON_MEMORY": "kernel-reset-abort-on-memory",
    "TCP_ABORT_ON_DATA": "kernel-reset-abort-on-data",
    "TCP_STATE": "kernel-reset-state",
    "TCP_KEEPALIVE_TIMEOUT": "kernel-reset-keepalive-timeout",
    "TCP_DISCONNECT_WITH_DATA": "kernel-reset-disconnect-with-data",
    "INVALID_SYN": "kernel-reset-invalid-syn",  # e.g. a full accept queue, abort_on_overflow=1
}
DROP_ACTIONS = {
    "NETFILTER_DROP": "kernel-drop-netfilter",
    "TCP_LISTEN_OVERFLOW": "kernel-drop-listen-overflow",
    "SOCKET_BACKLOG": "kernel-drop-socket-backlog",
    "PROTO_MEM": "kernel-drop-proto-mem",
}
RESET_OTHER, DROP_OTHER = "kernel-reset-other", "kernel-drop-other"
RECEIVED = "kernel-reset-received"
_HEAD = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?P<flags>\S+)\s+(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<fields>.*)$"
)
_FIELDS = re.compile(r"(\w+)(?:=|: )(\S*)")
_CONTAINER = re.compile(r"(?:docker|cri-containerd|crio|libpod|containerd)[-/:]([0-9a-f]{12,64})")
_IRQ_FLAGS = frozenset("hHsz")


def _endpoint(text: str | None) -> tuple[str | None, int | None]:
    """``127.0.0.1:9200`` / ``[2001:db8::1]:443`` -> (address, port); LineError when bad."""
    if not text:
        return None, None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise LineError(f"bad endpoint {text[:60]!r}")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise LineError(f"bad address {host[:60]!r}") from exc
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified and port == "0":
        return None, None  # the kernel did not know the peer (a reset from a listener)
    return str(ip), int(port)


def _ip(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise LineError(f"bad address {text[:60]!r}") from exc


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) > 65535:
        raise LineError(f"bad port {text[:20]!r}")
    return int(text)


def unit_of(cgroup: str) -> dict[str, str]:
    """The systemd unit and the container id a cgroup path names, when it names them."""
    out: dict[str, str] = {}
    for part in reversed(cgroup.split("/")):
        if part.endswith((".service", ".scope")) and "unit" not in out:
            out["unit"] = part
    m = _CONTAINER.search(cgroup)
    if m:
        out["container"] = m.group(1)[:12]
    return out


class KernelTraceParser(LineParser):
    name = "kernel-trace"
    description = "kernel reset/drop reasons recorded from tracefs (auditor --trace)"
    needles = (b'"kernel-trace"',)
    patterns: ClassVar[tuple[str, ...]] = (
        *RESET_ACTIONS.values(),
        *DROP_ACTIONS.values(),
        RESET_OTHER,
        DROP_OTHER,
        RECEIVED,
    )

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        lines = [ln for ln in head if ln.strip()]
        if not lines:
            return 0.0
        return sum(ln.lstrip().startswith('{"kernel-trace"') for ln in lines) / len(lines)

    def parse(self, line: str, location: Location) -> Event | None:
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise LineError(f"not JSON: {exc}") from exc
        if not isinstance(rec, dict) or not isinstance(rec.get(RECORD_KEY), str):
            raise LineError('not a kernel trace record (no "kernel-trace" key)')
        raw, stamp = rec.get("raw"), rec.get("time")
        if not isinstance(raw, str) or not isinstance(stamp, str):
            raise LineError('a kernel trace record needs "raw" and "time" strings')
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError as exc:
            raise LineError(f"bad time {stamp[:40]!r}") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.ctx.timezone)
        m = _HEAD.match(raw)
        if m is None:
            raise LineError("kernel trace line not understood")
        event = m.group("event")
        fields = dict(_FIELDS.findall(m.group("fields")))
        pid = int(m.group("pid"))
        flags = m.group("flags")
        in_task = pid > 0 and not (len(flags) > 2 and flags[2] in _IRQ_FLAGS)
        extra: dict[str, Any] = {"tracepoint": event, "cpu": int(m.group("cpu"))}
        cgroup = rec.get("cgroup")
        base: dict[str, Any] = {
            "timestamp": when,
            "location": location,
            "dataset": DATASET,
            "transport": "tcp",
            "host_name": self.ctx.host_name,
            "original": raw.strip()[:500],
        }
        if event == "tcp_send_reset":
            reason = fields.get("reason", "")
            local_ip, local_port = _endpoint(fields.get("src"))
            peer_ip, peer_port = _endpoint(fields.get("dest"))
            extra.update(reason=reason or "UNKNOWN", tcp_state=fields.get("state"))
            proc: dict[str, Any] = {}
            if in_task:
                proc = {"process_name": m.group("comm") or None, "process_pid": pid}
                if isinstance(cgroup, str) and cgroup:
                    extra["cgroup"] = cgroup[:512]
                    extra.update(unit_of(cgroup))
            action = RESET_ACTIONS.get(reason, RESET_OTHER)
            return Event(
                **base,
                **proc,
                action=action,
                outcome="failure",
                source_ip=peer_ip,
                source_port=peer_port,
                destination_ip=local_ip,
                destination_port=local_port,
                message=f"kernel sent a reset: {reason or 'no reason recorded'}",
                extra=extra,
            )
        if event == "kfree_skb":
            reason = fields.get("reason", "")
            extra.update(reason=reason or "UNKNOWN", where=fields.get("location"))
            return Event(
                **base,
                action=DROP_ACTIONS.get(reason, DROP_OTHER),
                kind="event",
                message=f"kernel dropped a packet: {reason or 'no reason recorded'}",
                extra=extra,
            )
        if event == "tcp_receive_reset":
            six = fields.get("family") == "AF_INET6"
            return Event(
                **base,
                action=RECEIVED,
                source_ip=_ip(fields.get("saddrv6" if six else "saddr")),
                source_port=_port(fields.get("sport")),
                destination_ip=_ip(fields.get("daddrv6" if six else "daddr")),
                destination_port=_port(fields.get("dport")),
                message="a local socket received a reset",
                extra=extra,
            )
        return None
