"""Service restarts as systemd logs them: a unit stopping, killed, started, failed.

A restart of nginx or of an upstream cuts the connections in flight; the journal
(or syslog) says when, and how: ``Stopping nginx.service...``, a stop that timed out
and was killed, the main process killed by a signal, ``Started nginx.service``.
Read from systemd's own lines (program ``systemd``, PID 1 or a user manager) in any
framing the kernel parser takes apart; each becomes an event naming the unit.

Wording differs between systemd versions (``Stopping`` / ``Stopping The nginx HTTP
server...`` with the description, or ``nginx.service: ...`` lines); a line from
systemd that names a unit but is none of these is irrelevant, not an error.
"""

from __future__ import annotations

import re
from typing import Any

from auditor.models import Event, Location
from auditor.parsers.syslog_frame import Frame

UNIT_ACTIONS = (
    "unit-stopping",
    "unit-stopped",
    "unit-started",
    "unit-stop-timeout",
    "unit-killed",
    "unit-failed",
    "unit-deactivated",
)
NEEDLE = b".service"
PROGRAMS = frozenset({"systemd", "init"})

_UNIT = r"(?P<unit>[\w@:.\\-]+\.service)"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # "nginx.service: State 'stop-sigterm' timed out. Killing." / "Stopping timed out. Terminating."
    (re.compile(_UNIT + r": (?:State '[\w-]+' timed out|Stopping timed out)"), "unit-stop-timeout"),
    # "nginx.service: Main process exited, code=killed, status=9/KILL"
    (re.compile(_UNIT + r": Main process exited, code=(?:killed|dumped), status=(?P<sig>\S+)"),
     "unit-killed"),
    (re.compile(_UNIT + r": Killing process (?P<pid>\d+) \((?P<comm>[^)]*)\)"), "unit-killed"),
    (re.compile(_UNIT + r": Failed with result '(?P<result>[\w-]+)'"), "unit-failed"),
    (re.compile(r"^Stopping " + _UNIT), "unit-stopping"),
    (re.compile(r"^Stopped " + _UNIT), "unit-stopped"),
    (re.compile(r"^Started " + _UNIT), "unit-started"),
    # systemd >= 249 says this of every unit going inactive: a stopped service, and as well
    # every oneshot job that simply finished (logrotate, apt-daily...): not a stop by itself.
    (re.compile(_UNIT + r": Deactivated successfully"), "unit-deactivated"),
    (re.compile(_UNIT + r": (?:Scheduled restart job|Consumed )"), ""),  # context, no event
)
# Older wording: "Stopping A high performance web server and a reverse proxy server..."
_DESCRIBED = re.compile(r"^(?P<verb>Stopping|Stopped|Started) (?P<desc>.+?)(?:\.\.\.|\.)?$")
_VERBS = {"Stopping": "unit-stopping", "Stopped": "unit-stopped", "Started": "unit-started"}
_KNOWN_DESCRIPTIONS = {
    # nginx's unit in Debian/Ubuntu and in the nginx.org packages
    "A high performance web server and a reverse proxy server": "nginx.service",
    "nginx - high performance web server": "nginx.service",
    "The nginx HTTP and reverse proxy server": "nginx.service",
}


def unit_event(frame: Frame, line: str, location: Location, host: str | None) -> Event | None:
    """The event of one of systemd's unit lines, or None when it is none of them."""
    if frame.program not in PROGRAMS:
        return None
    msg = frame.message
    action, extra = _match(msg)
    if not action:
        return None
    return Event(
        timestamp=frame.timestamp,
        location=location,
        dataset="systemd",
        action=action,
        kind="event",
        category=("process",),
        type=("end",) if action != "unit-started" else ("start",),
        outcome="failure" if action in ("unit-stop-timeout", "unit-killed", "unit-failed")
        else None,
        log_level=frame.level,
        process_pid=frame.pid,
        process_name=frame.program,
        host_name=frame.host or host,
        message=msg,
        original=line,
        time_relative=frame.relative,
        extra={**frame.extra, **extra},
    )


def _match(msg: str) -> tuple[str, dict[str, Any]]:
    for pattern, action in _RULES:
        m = pattern.search(msg)
        if m is None:
            continue
        if not action:
            return "", {}
        found = {k: v for k, v in m.groupdict().items() if v is not None}
        extra: dict[str, Any] = {"unit": found.pop("unit")}
        if "sig" in found:
            extra["status"] = found["sig"]
        if "result" in found:
            extra["result"] = found["result"]
        if "pid" in found:
            extra["killed_pid"] = int(found["pid"])
            extra["killed_name"] = found.get("comm", "")
        return action, extra
    m = _DESCRIBED.match(msg)
    if m is not None and m.group("desc") in _KNOWN_DESCRIPTIONS:
        return _VERBS[m.group("verb")], {"unit": _KNOWN_DESCRIPTIONS[m.group("desc")]}
    return "", {}
