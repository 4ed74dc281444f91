"""Kernel messages without any time stamp: ``dmesg -t`` / ``dmesg --notime`` output.

Each line is a kernel message alone (``dmesg -r -t`` adds a ``<N>`` level). The
lines carry no time: every event takes the file's time (``ctx.reference_time``,
the modification time) and says so with ``auditor.time_source`` =
``file-mtime``. Chosen only when no line of the file's head fits a time-stamped
framing and some hold a kernel mark; ``--type kernel-bare`` forces it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from auditor.parsers import app_listen, systemd_units
from auditor.parsers.base import ParseContext
from auditor.parsers.kernel import KernelParser
from auditor.parsers.syslog_frame import LEVELS, Frame, Framer, sniff_framing

_PRI = re.compile(r"<([0-7])>")
_KERNEL_MARKS = (
    "IN=", "nf_conntrack", "SYN flooding", "Killed process", "oom-kill:", "Linux version ",
    "Command line:", "TCP: ", "VFS: ",
)


class BareFramer(Framer):
    """Every line is a kernel message; its time is the file's."""

    def frame(self, line: str) -> Frame:
        line = line.rstrip("\r\n")
        level = None
        m = _PRI.match(line)
        if m is not None:
            level, line = LEVELS[int(m.group(1))], line[m.end() :]
        return Frame(self.ctx.reference_time, line, line, None, "kernel", None, level,
                     fmt="dmesg-bare", extra={"time_source": "file-mtime"})


class BareKernelParser(KernelParser):
    """``dmesg -t`` output -> the kernel parser's events, at the file's time."""

    name: ClassVar[str] = "kernel-bare"
    description: ClassVar[str] = "kernel messages without time stamps (dmesg -t)"
    # the ring buffer holds no systemd unit lines nor programs' own (they go to the journal)
    patterns: ClassVar[tuple[str, ...]] = tuple(
        a for a in KernelParser.patterns
        if a not in systemd_units.UNIT_ACTIONS and a != app_listen.ACTION
    )

    def __init__(self, ctx: ParseContext, path: str = "-") -> None:
        super().__init__(ctx, path)
        self.framer = BareFramer(ctx)

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        framed, total = sniff_framing(head)
        if not total or framed:
            return 0.0
        marked = sum(1 for line in head if any(mark in line for mark in _KERNEL_MARKS))
        return 0.4 if marked else 0.0
