"""Kernel messages that explain resets, in any syslog, journal or dmesg framing.

Each kind is one ``event.action``:

* netfilter LOG lines (iptables ``-j LOG``, nft ``log prefix``, UFW, firewalld,
  also ulogd lines that reach this parser): ``firewall-reject``, ``firewall-drop``,
  ``firewall-accept``, ``firewall-log``, ``firewall-rate-limit``, ``firewall-audit``
  (see :mod:`auditor.parsers.netfilter`);
* ``nf_conntrack: table full, dropping packet`` -> ``conntrack-table-full``;
  other ``nf_conntrack: ... dropping`` / ``... table full`` -> ``conntrack-drop``;
* ``Possible SYN flooding on port P. Sending cookies|Dropping request`` -> ``syn-flood``
  (``destination.port``, ``auditor.mode`` = cookies | drop);
* ``TCP: too many orphaned sockets`` -> ``orphan-sockets``;
* ``TCP: out of memory -- consider tuning tcp_mem`` -> ``tcp-memory-pressure``;
* ``VFS: file-max limit N reached`` -> ``file-max-reached`` (``auditor.limit``);
* a program's own line announcing where it listens (``Listening on http://0.0.0.0:8080``,
  gunicorn, uvicorn, Spring Boot...) -> ``app-listening`` (see :mod:`auditor.parsers.app_listen`);
  systemd's unit lines -> ``unit-*`` (see :mod:`auditor.parsers.systemd_units`);
* ``Out of memory: Killed process``, ``Memory cgroup out of memory: Killed process``
  (also the 2.6.32 shape ``Killed process 1234, UID 48, (httpd) total-vm:...``, and
  names holding ``)``) -> ``oom-kill`` (``process.pid``/``process.name``), one per kill;
  the ``oom-kill:constraint=...`` summary that newer kernels write just before it ->
  ``oom-constraint`` (context), whose cgroup details the kill line of the same pid takes.

A line with a relevant marker that yields no event (``Killed process`` not read, a
``SRC=`` packet log without ``IN=``) is not understood (LineError), never dropped.

Everything else returns None, cheaply: the scanner only offers lines holding a
needle, and a line without one (``--every-line``) is only checked for its framing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from auditor.fastinit import slot_maker
from auditor.models import Event, Location
from auditor.parsers import app_listen, netfilter, systemd_units
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.parsers.syslog_frame import Frame, Framer, sniff_framing, strip_uptime
from auditor.parsers.ulogd_json import ulogd_json_event

KERNEL_ACTIONS = (
    "conntrack-table-full",
    "conntrack-drop",
    "syn-flood",
    "orphan-sockets",
    "tcp-memory-pressure",
    "file-max-reached",
    "oom-kill",
    "oom-constraint",
)

_CT_FULL = re.compile(
    r"nf_conntrack: (?:nf_conntrack: )?table full(?: in netns \d+)?, dropping packet"
)
_SYN = re.compile(
    r"(?:(\S+): )?[Pp]ossible SYN flooding on port (?:(\[[^\]]*\]|[^\s:]+):)?(\d{1,5})\. "
    r"(Sending cookies|Dropping request)"
)
_ORPHAN = re.compile(r"too many (?:of )?orphaned sockets")
_TCP_MEM = re.compile(r"out of memory -- consider tuning tcp_mem")
_FILE_MAX = re.compile(r"VFS: file-max limit (\d{1,20}) reached")
# The name is the task's comm (at most 15 bytes, any of them ")" or a space): it ends at
# the ")" that " total-vm:" (" vsz:" on some 2.6 kernels), a comma or the end follows.
_KILLED = re.compile(
    r"(?:(Memory cgroup out of memory|Out of memory(?: \([^)]*\))?): )?"
    r"Killed process (\d{1,10})(?:, UID (\d{1,10}),)? \((.{0,64}?)\)"
    r"(?= total-vm:| vsz:|,|\.?\s*\Z)(.*)"
)
_KB = re.compile(r"([a-z-]+):(\d+)kB")
_OOM_KILL = re.compile(r"oom-kill:(.*)")
_WILDCARD = ("0.0.0.0", "::", "*")

_KIND: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str | None]] = {
    # action: (dataset, category, type, outcome)
    "conntrack-table-full": ("kernel.conntrack", ("network",), ("connection", "denied"), "failure"),
    "conntrack-drop": ("kernel.conntrack", ("network",), ("connection", "denied"), "failure"),
    "syn-flood": ("kernel.tcp", ("network",), ("connection", "info"), None),
    "orphan-sockets": ("kernel.tcp", ("network",), ("error",), "failure"),
    "tcp-memory-pressure": ("kernel.tcp", ("network",), ("error",), "failure"),
    "file-max-reached": ("kernel.vfs", ("host",), ("error",), "failure"),
    "oom-kill": ("kernel.oom", ("process",), ("end",), None),
    "oom-constraint": ("kernel.oom", ("process",), ("info",), None),
}
_CONSTRAINT_KEYS = ("constraint", "oom_memcg", "cgroup", "cpuset")
_LOG_TAGS = (None, "kernel", "ulogd", "ulogd2")
# The commonest relevant line, an IPv4 TCP/UDP packet log from the kernel in RFC 3164
# framing, in one match: the framing of Framer._rfc3164_tagged with the tag fixed to
# "kernel" and the optional uptime of strip_uptime (neither may give back what it
# took: possessive), then the prefix and netfilter.FAST_V4. ASCII only (it is much
# faster): host and interface names are printable ASCII, so that what matches is
# what the general path's \S runs would take; an uptime with other digits is left
# to the general path by _fast_packet. Measured (parse calls alone, 11,076 candidate
# lines of bench_parse's syslog.log, loaded 2-core machine): 16 vs 37 us per line with
# all shortcuts on/off; this one alone 32 vs 42. End to end (bench_parse.py, 106 MB,
# rg path, where finding the lines dominates) 0.38-0.40 vs 0.41-0.42 CPU s.
_FAST_PACKET = re.compile(
    r"([A-Z][a-z]{2} [ \d]?\d) (\d\d:\d\d:\d\d) +([!-~]*[!-9;-~]) kernel: ?+"
    r"(?:\[ *(\d+\.\d+)\] ?)?+((.*?)IN=([!-~]*) OUT=([!-~]*)" + netfilter.FAST_V4 + r")\Z",
    re.S | re.ASCII,
)

# A "kernel:" line of the same shape (see _FAST_PACKET), for Framer._rfc3164_tagged's Frame.
_KERNEL_LINE = re.compile(
    r"([A-Z][a-z]{2} [ \d]?\d) (\d\d:\d\d:\d\d) +([!-~]*[!-9;-~]) "
    r"(kernel: ?+(?:\[ *(\d+\.\d+)\] ?)?+(.*))",
    re.S | re.ASCII,
)
_kernel_frame = slot_maker(Frame, "timestamp", "message", "rest", "host", "program", "fmt", "extra")
# Makes the events of _fast_packet (positional arguments: a line's worth of time).
_packet_event = slot_maker(
    Event, "timestamp", "location", "dataset", "action", "category", "type", "outcome",
    "source_ip", "source_port", "source_mac", "destination_ip", "destination_port", "transport",
    "network_type", "ingress_interface", "egress_interface", "rule_name", "process_name",
    "host_name", "message", "original", "extra",
)

# Makes the events of kernel_event.
_kernel_event = slot_maker(
    Event, "timestamp", "location", "dataset", "action", "category", "type", "outcome",
    "log_level", "destination_ip", "destination_port", "transport", "process_pid",
    "process_name", "host_name", "message", "original", "time_relative", "extra",
)


class KernelParser(LineParser):
    """Kernel log (kern.log, syslog, journal export, dmesg) -> reset-relevant events."""

    name: ClassVar[str] = "kernel"
    description: ClassVar[str] = (
        "kernel messages (netfilter LOG/UFW/firewalld, conntrack, SYN flood, OOM...) "
        "in syslog, journal or dmesg framing"
    )
    # Few needles: the pure-Python scanner pays one pass over the data per needle.
    # "TCP: " covers the SYN-flood, orphan and tcp_mem messages (all carry that prefix).
    needles: tuple[bytes, ...] = (
        b"SRC=",
        b"nf_conntrack",
        b"TCP: ",
        b"file-max",
        b"Killed process",
        b"oom-kill:",
        # journald stores non-UTF-8 messages as byte arrays, invisible to the other needles
        b'"MESSAGE":[',
        # systemd's unit lines: a service stopped, killed or started (systemd_units)
        systemd_units.NEEDLE,
        b"Stopping ",
        # programs announcing the port they listen on (app_listen)
        *app_listen.NEEDLES,
    )
    patterns: ClassVar[tuple[str, ...]] = (
        netfilter.ACTIONS + KERNEL_ACTIONS + systemd_units.UNIT_ACTIONS + (app_listen.ACTION,)
    )
    # event.dataset and extra keys of packet-log events from this parser.
    packet_dataset: ClassVar[str] = "netfilter.log"
    packet_extra: ClassVar[dict[str, Any]] = {}

    def __init__(self, ctx: ParseContext, path: str = "-") -> None:
        super().__init__(ctx, path)
        self.framer = Framer(ctx)
        self._words = tuple(n.decode() for n in self.needles)
        self.fast = True  # False: general paths only (tests compare both)
        # Every line _FAST_PACKET matches holds "IN=" and "SRC=": is that a needle here?
        self._packet_has_needle = "SRC=" in self._words or "IN=" in self._words
        # The latest "10:00:01" of the framer's remembered day, and its instant.
        self._time_text = ""
        self._time_day = (0, 0, 0)
        self._time_ts = datetime.min
        # (pid, details) of the latest oom-kill: summary, for the kill line that follows it.
        self._constraint: tuple[int, dict[str, Any]] | None = None

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        ok, total = sniff_framing(head)
        if not total or ok * 2 < total:
            return 0.0
        kernel = sum(
            1
            for line in head
            if " kernel: " in line or line.startswith("[") or '"kernel"' in line
        )
        return 0.8 if kernel else 0.45

    def parse(self, line: str, location: Location) -> Event | None:
        frame: Frame | None = None
        if self.fast:
            if "IN=" in line:
                event = self._fast_packet(line, location)
                if event is not None:
                    return event
            else:
                frame = self._kernel_frame(line)
        # Framing first, so that --every-line validates every line (and the year
        # inference sees every stamp); then lines without a needle are irrelevant.
        if frame is None:
            frame = self.framer.frame(line)
            if frame is None:
                return None
        for word in self._words:
            if word in line:
                break
        else:
            return None
        if frame.data is not None:
            return ulogd_json_event(frame.data, self.ctx, location, line)
        return self.frame_event(frame, line, location)

    def _time(self, day_text: str, time_text: str) -> datetime | None:
        """The instant of "Nov 24" "10:00:01" when the day is the framer's remembered one."""
        framer = self.framer
        day = framer._day
        if day_text != framer._day_text:
            return None
        if time_text == self._time_text and day is self._time_day:
            return self._time_ts  # lines of one second share their instant
        year, month, d = day
        try:
            ts = datetime(year, month, d, int(time_text[:2]), int(time_text[3:5]),
                          int(time_text[6:]), tzinfo=framer.tz)
        except ValueError:
            return None
        self._time_text, self._time_day, self._time_ts = time_text, day, ts
        return ts

    def _kernel_frame(self, line: str) -> Frame | None:
        """The Frame the framer gives a "kernel:" line of the remembered day; None: ask it."""
        m = _KERNEL_LINE.match(line.rstrip("\r\n"))
        if m is None:
            return None
        day_text, time_text, host, rest, uptime, message = m.groups()
        if uptime is None and message.startswith("[") and strip_uptime(message)[1] is not None:
            return None  # an uptime in digits other than ASCII ones
        ts = self._time(day_text, time_text)
        if ts is None:
            return None
        extra = {"uptime": float(uptime)} if uptime is not None else {}
        return _kernel_frame(ts, message, rest, host, "kernel", "rfc3164", extra)

    def _fast_packet(self, line: str, location: Location) -> Event | None:
        """What the general path gives a common packet line, in one match; None: not handled.

        Handled only when the day is the framer's remembered one (so the year is
        known without asking the inference again) and the line holds a needle.
        """
        m = _FAST_PACKET.match(line.rstrip("\r\n"))
        if m is None:
            return None
        g = m.groups()
        day_text, time_text, host, uptime, message, prefix, ingress, egress = g[:8]
        if "IN=" in prefix:
            return None
        if uptime is None and message.startswith("[") and strip_uptime(message)[1] is not None:
            return None  # an uptime in digits other than ASCII ones
        if not self._packet_has_needle and not any(word in line for word in self._words):
            return None
        ts = self._time(day_text, time_text)
        if ts is None:
            return None
        fields = netfilter.fast_v4_fields(g[8:])
        if fields is None:
            return None
        packet_extra, source_mac, sport, dport, transport = fields
        action, cls_extra = netfilter.classify_cached(prefix)
        types, outcome = netfilter.ACTION_TYPES[action]
        if uptime:
            extra = {"uptime": float(uptime), **self.packet_extra, **packet_extra, **cls_extra}
        else:
            extra = {**self.packet_extra, **packet_extra, **cls_extra}
        # The event netfilter.packet_event makes of this packet and frame.
        return _packet_event(
            ts, location, self.packet_dataset, action, ("network",), types, outcome,
            g[9], sport, source_mac, g[10], dport, transport,
            "ipv4", ingress or None, egress or None, prefix.strip() or None, "kernel",
            host, message, line, extra,
        )

    def frame_event(self, frame: Frame, line: str, location: Location) -> Event | None:
        """The event of one framed line, or None when it is irrelevant."""
        if "IN=" in frame.rest:
            text = frame.message if frame.program in _LOG_TAGS else frame.rest
            packet = netfilter.parse_log_line(text, self.fast)
            if packet is not None:
                return netfilter.packet_event(
                    packet,
                    timestamp=frame.timestamp,
                    location=location,
                    original=line,
                    message=text,
                    host=frame.host or self.ctx.host_name,
                    relative=frame.relative,
                    level=frame.level,
                    extra={**frame.extra, **self.packet_extra},
                    process=(frame.program, frame.pid),
                    dataset=self.packet_dataset,
                )
        if frame.program not in _LOG_TAGS:
            if frame.program in systemd_units.PROGRAMS:
                return systemd_units.unit_event(frame, line, location, self.ctx.host_name)
            return app_listen.listen_event(frame, line, location, self.ctx.host_name)
        return self.kernel_event(frame, line, location)

    def kernel_event(self, frame: Frame, line: str, location: Location) -> Event | None:
        """conntrack, TCP, VFS and OOM messages."""
        msg = frame.message
        extra: dict[str, Any] = dict(frame.extra)
        pid, pname = frame.pid, frame.program
        port: int | None = None
        dest_ip: str | None = None
        action: str | None = None
        if "nf_conntrack" in msg:
            if _CT_FULL.search(msg):
                action = "conntrack-table-full"
            elif "dropping" in msg or "table full" in msg:
                action = "conntrack-drop"
        elif "SYN flooding" in msg:
            m = _SYN.search(msg)
            if m is None:
                raise LineError("SYN flooding message not understood")
            action = "syn-flood"
            proto, addr, port_text, what = m.groups()
            port = int(port_text)
            if port > 65535:
                raise LineError(f"bad port {port_text}")
            extra["mode"] = "cookies" if what.startswith("Sending") else "drop"
            if proto and proto != "TCP":
                extra["socket"] = proto
            if addr:
                addr = addr.strip("[]")
                extra["listen"] = addr
                if addr not in _WILDCARD:
                    dest_ip = addr
        elif _ORPHAN.search(msg):
            action = "orphan-sockets"
        elif _TCP_MEM.search(msg):
            action = "tcp-memory-pressure"
        elif "file-max" in msg:
            fm = _FILE_MAX.search(msg)
            if fm is not None:
                action = "file-max-reached"
                extra["limit"] = int(fm.group(1))
        elif "Killed process" in msg:
            k = _KILLED.search(msg)
            if k is None:
                raise LineError("'Killed process' line not understood")
            action = "oom-kill"
            scope, pid_text, old_uid, pname, tail = k.groups()
            pid = int(pid_text)
            if scope and scope.startswith("Memory cgroup"):
                extra["cgroup_oom"] = True
            for key, value in _KB.findall(tail):
                extra[key.replace("-", "_") + "_kb"] = int(value)
            uid = re.search(r"UID:(\d+)", tail)
            if uid or old_uid:
                extra["uid"] = int(uid.group(1) if uid else old_uid)
            adj = re.search(r"oom_score_adj:(-?\d+)", tail)
            if adj:
                extra["oom_score_adj"] = int(adj.group(1))
            seen = self._constraint
            if seen is not None and seen[0] == pid:  # the summary of this very kill
                extra.update(seen[1])
            self._constraint = None
        elif "oom-kill:" in msg:
            o = _OOM_KILL.search(msg)
            fields = _oom_fields(o.group(1)) if o else {}
            if "pid" in fields and fields["pid"].isdigit() and len(fields["pid"]) < 11:
                action = "oom-constraint"
                pid, pname = int(fields["pid"]), fields.get("task")
                for key in ("constraint", "oom_memcg", "task_memcg", "cpuset"):
                    if fields.get(key):
                        extra["cgroup" if key == "task_memcg" else key] = fields[key]
                if fields.get("uid", "").isdigit():
                    extra["uid"] = int(fields["uid"])
                self._constraint = (pid, {k: extra[k] for k in _CONSTRAINT_KEYS if k in extra})
            else:
                raise LineError("oom-kill line without pid")
        if action is None:
            if "SRC=" in msg and " DST=" in msg:
                raise LineError("packet log without IN= and OUT=")
            return None
        dataset, category, types, outcome = _KIND[action]
        return _kernel_event(
            frame.timestamp, location, dataset, action, category, types, outcome, frame.level,
            dest_ip, port, "tcp" if action == "syn-flood" else None, pid, pname,
            frame.host or self.ctx.host_name, msg, line, frame.relative, extra,
        )


def _oom_fields(text: str) -> dict[str, str]:
    """``constraint=X,nodemask=(null),...,task=name,pid=1,uid=0`` -> dict (task may hold commas)."""
    out: dict[str, str] = {}
    tail = re.search(r",task=(.*),pid=(\d+),uid=(\d+)\s*$", text)
    if tail:
        out["task"], out["pid"], out["uid"] = tail.groups()
        text = text[: tail.start()]
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if eq:
            out.setdefault(key.strip(), value.strip())
    return out
