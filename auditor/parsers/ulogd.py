"""ulogd output files: its syslog emulation (LOGEMU) and its JSON output.

LOGEMU lines look like kernel LOG lines without the ``kernel:`` tag
(``Nov 24 10:00:01 fw1 DROP: IN=eth0 OUT= ... SRC=...``): everything between
the host name and ``IN=`` is the prefix. JSON lines are handled by
:mod:`auditor.parsers.ulogd_json`. Events have ``event.dataset`` ``netfilter.ulogd``
and ``auditor.logger`` = ulogd.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from auditor.models import Event, Location
from auditor.parsers.base import LineError, ParseContext
from auditor.parsers.kernel import KernelParser
from auditor.parsers.syslog_frame import Frame, Framer
from auditor.parsers.ulogd_json import is_ulogd


class UlogdParser(KernelParser):
    """ulogd LOGEMU or JSON output -> firewall events."""

    name: ClassVar[str] = "ulogd"
    description: ClassVar[str] = "ulogd packet logs (syslog emulation or JSON output)"
    needles: tuple[bytes, ...] = (b"IN=", b'"oob.prefix"', b'"src_ip"', b'"ip.saddr.str"')
    patterns: ClassVar[tuple[str, ...]] = (
        "firewall-reject",
        "firewall-drop",
        "firewall-accept",
        "firewall-log",
    )
    packet_dataset: ClassVar[str] = "netfilter.ulogd"
    packet_extra: ClassVar[dict[str, Any]] = {"logger": "ulogd"}

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        lines = [line for line in head if line.strip()]
        if not lines:
            return 0.0
        records = 0
        for line in lines:
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                records += isinstance(obj, dict) and is_ulogd(obj)
        if records * 2 >= len(lines):
            return 0.95
        framer = Framer(ParseContext())
        emu = 0
        for line in lines:
            try:
                frame = framer.frame(line)
            except LineError:
                continue
            if frame is None or not frame.host or frame.program == "kernel":
                continue
            emu += "IN=" in frame.rest
        return 0.85 if emu * 2 >= len(lines) else 0.0

    def kernel_event(self, frame: Frame, line: str, location: Location) -> Event | None:
        return None
