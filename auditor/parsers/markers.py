"""Relevant-looking lines: the marks a line that bears on resets carries.

A line holding one of them (a reset-relevant errno ``(111: ``, a packet log's
``SRC= DST=`` or ``IN= OUT=``, ``Killed process``, ``oom-kill:``, an access-log
status auditor reads (444, 499, 502, 503, 504) after the quoted request; other
5xx such as 500 are the application's errors, not lost connections) must give an event or be
counted as not understood: :func:`marker` names the mark, so that a parser (or
the router of :mod:`auditor.parsers.mixed`) can say what it failed to read
instead of dropping the line.
"""

from __future__ import annotations

import re

from auditor.nginx.logformat import STATUS_ACTIONS
from auditor.parsers.nginx_error import RELEVANT_ERRNOS

_STATUSES = "|".join(str(code) for code in sorted(STATUS_ACTIONS))

_MARK = re.compile(
    r"\((\d{1,4}): [^)]|\bSRC=\S+ DST=|\bIN=\S* OUT=|Killed process|oom-kill:"
    rf'|" ({_STATUSES}) (?:\d|-)'
)
#: Substrings of every marked line (a scanner's needles).
NEEDLES: tuple[bytes, ...] = (
    *(f"({n}: ".encode() for n in sorted(RELEVANT_ERRNOS)),
    b"SRC=", b"IN=", b"Killed process", b"oom-kill:",
    *(f'" {code} '.encode() for code in sorted(STATUS_ACTIONS)),
)


def marker(line: str) -> str | None:
    """The first relevant mark in ``line`` (e.g. ``errno 113``, ``status 502``), or None."""
    for m in _MARK.finditer(line):
        errno, status = m.group(1), m.group(2)
        if errno is not None:
            if errno in RELEVANT_ERRNOS:
                return f"errno {errno}"
            continue
        if status is not None:
            return f"status {status}"
        text = m.group(0)
        return text.split("=", 1)[0] + "=" if "=" in text else text
    return None
