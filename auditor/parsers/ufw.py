"""UFW's own log (/var/log/ufw.log): ``[UFW BLOCK]``, ``[UFW LIMIT BLOCK]``, ``[UFW ALLOW]``...

The lines are kernel LOG lines in syslog framing, so this is the kernel parser
narrowed to lines carrying ``[UFW ``; kern.log files that merely contain some
UFW lines are better read by the ``kernel`` parser, which understands them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from auditor.models import Event, Location
from auditor.parsers.kernel import KernelParser
from auditor.parsers.syslog_frame import Frame


class UfwParser(KernelParser):
    """``/var/log/ufw.log`` -> firewall events (``auditor.firewall`` = ufw)."""

    name: ClassVar[str] = "ufw"
    description: ClassVar[str] = "UFW firewall log ([UFW BLOCK], [UFW LIMIT BLOCK], [UFW ALLOW]...)"
    needles: tuple[bytes, ...] = (b"[UFW ",)
    patterns: ClassVar[tuple[str, ...]] = (
        "firewall-drop",
        "firewall-rate-limit",
        "firewall-accept",
        "firewall-audit",
    )

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        lines = [line for line in head if line.strip()]
        if not lines:
            return 0.0
        ufw = sum(1 for line in lines if "[UFW " in line and "IN=" in line)
        # rsyslog's ufw.log holds nothing else; a mixed kern.log is the kernel parser's
        return 0.9 if ufw == len(lines) else 0.0

    def kernel_event(self, frame: Frame, line: str, location: Location) -> Event | None:
        return None
