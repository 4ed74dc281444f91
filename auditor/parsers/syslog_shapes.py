"""Less common syslog framings, for :class:`~auditor.parsers.syslog_frame.Framer`.

* OpenWrt ``logread``: ``Mon Nov 24 10:00:01 2026 kern.warn kernel: [ 12.3] msg``
  (weekday, day, time and year, then ``facility.level``, no host);
* busybox ``syslogd`` (without ``-S``): ``Nov 24 10:00:01 router kern.warn kernel: msg``,
  the ``facility.level`` between host and tag (:func:`facility_level`);
* Proxmox VE ``pve-firewall.log``: ``VMID LOGLEVEL CHAIN DD/Mon/YYYY:HH:MM:SS +ZZZZ
  [policy ]VERDICT: IN=...`` (the format its documentation gives;
  ``0 5 - ... starting pvefw logger`` for the logger's own lines).

Each function returns the parts of a line, or None when it is not of that shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from auditor.timeutil import MONTHS

_FACILITIES = frozenset((
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    *(f"local{i}" for i in range(8)),
))
_LEVEL_NAMES = {
    "emerg": "emerg", "panic": "emerg", "alert": "alert", "crit": "crit", "err": "err",
    "error": "err", "warn": "warning", "warning": "warning", "notice": "notice",
    "info": "info", "debug": "debug",
}
_FACILITY_LEVEL = re.compile(r"([a-z][a-z0-9-]{1,11})\.([a-z]{3,7}) ")
_LOGREAD = re.compile(
    r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4}) ?(.*)", re.S
)
_PVE = re.compile(
    r"(\d{1,10}) ([0-7]|nolog) (\S{1,64}) (\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) "
    r"([+-])(\d\d)(\d\d) (.*)",
    re.S,
)


@dataclass(frozen=True, slots=True)
class Shape:
    """The envelope of one line in one of these framings."""

    timestamp: datetime
    rest: str  # the text after the envelope: ``tag: message`` or the message alone
    level: str | None = None
    fields: tuple[tuple[str, str | int], ...] = ()  # framing-specific, e.g. the VM id


def facility_level(rest: str) -> tuple[str | None, str]:
    """``kern.warn kernel: msg`` -> ("warning", "kernel: msg"); (None, rest) without one."""
    m = _FACILITY_LEVEL.match(rest)
    if m is None or m.group(1) not in _FACILITIES or m.group(2) not in _LEVEL_NAMES:
        return None, rest
    return _LEVEL_NAMES[m.group(2)], rest[m.end() :]


def logread(line: str, tz: tzinfo) -> Shape | None:
    """An OpenWrt ``logread`` line (local time in ``tz``); ValueError for an impossible date."""
    m = _LOGREAD.match(line)
    if m is None:
        return None
    mon, day, hh, mm, ss, year, rest = m.groups()
    month = MONTHS.get(mon)
    if month is None:
        return None
    ts = datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    level, rest = facility_level(rest)
    return Shape(ts, rest, level)


def pve_firewall(line: str) -> Shape | None:
    """A Proxmox ``pve-firewall.log`` line; ValueError for an impossible date."""
    m = _PVE.match(line)
    if m is None:
        return None
    vmid, level, chain, day, mon, year, hh, mm, ss, sign, oh, om, rest = m.groups()
    month = MONTHS.get(mon)
    if month is None:
        return None
    offset = timedelta(hours=int(oh), minutes=int(om))
    tz = timezone(-offset if sign == "-" else offset)
    ts = datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    fields: list[tuple[str, str | int]] = [("firewall", "pve-firewall"), ("vmid", int(vmid))]
    if chain != "-":
        fields.append(("chain", chain))
    names = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
    return Shape(ts, rest, names[int(level)] if level.isdigit() else None, tuple(fields))
