"""Applications announcing where they listen: ``Listening on http://0.0.0.0:8080``.

Servers say at start-up which address and port they took, in their own words, and
under systemd those lines reach syslog or the journal tagged with the program (or
unit) name. A port a program announced and that nothing holds any more (after a
deploy moved it, or a crash) is where clients get "connection refused": the kernel
answers their SYNs with resets. Shapes read (each with samples in
``samples/logs/kernel/app-listen.log``):

* generic and Go: ``Listening on http://0.0.0.0:8080``, ``listening on :8080``,
  ``Listening on [::]:8080``, ``Listening on port 8080``;
* gunicorn: ``[INFO] Listening at: http://0.0.0.0:8000 (1234)``;
* uvicorn: ``Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)``;
* Flask / werkzeug: `` * Running on http://127.0.0.1:5000``;
* Node (Express, http, Fastify): ``Server listening on port 3000``,
  ``Server running at http://127.0.0.1:3000/``, ``Server listening at http://...``;
* Spring Boot: ``Tomcat started on port(s): 8080 (http) with context path ''``,
  ``Tomcat started on port 8080 (http)``, ``Netty started on port 8080``, Jetty and
  Undertow alike (several ports: the first is ``destination.port``, all in
  ``auditor.ports``);
* sshd-like ``Server listening on 0.0.0.0 port 22.`` and PostgreSQL's
  ``listening on IPv4 address "0.0.0.0", port 5432``.

Not announcements (no event): a Unix socket (``Listening at: unix:/run/app.sock``),
no port (``Running on all addresses (0.0.0.0)``), a negation (``stopped listening``,
``failed ... listening on``, ``not listening``), a UDP port (``ss -ltn`` never lists
it), a port outside 1-65535.
Each announcement is an ``app-listening`` event: ``destination.port`` (and
``destination.ip`` unless a wildcard), the program as ``process.name``, the URL
scheme in ``auditor.scheme`` and the unit in ``auditor.unit`` when the journal names it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from auditor.models import Event, Location
from auditor.parsers.syslog_frame import Frame

ACTION = "app-listening"
#: Substrings of every announcement (the scanner's needles; case as servers write them).
NEEDLES: tuple[bytes, ...] = (b"istening ", b"unning ", b"tarted on port")

_HOST = r"(?:\[[0-9A-Fa-f:.%\w]*\]|[\w.-]*|\*)"  # [::], 0.0.0.0, localhost, *, "" (":8080")
_PORT = r"(?P<port>\d{1,5})"
_URL = rf"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>{_HOST}):{_PORT}(?![\d.:])"
_SHAPES: tuple[re.Pattern[str], ...] = (
    # "Listening on http://0.0.0.0:8080", "listening on :8080", gunicorn "Listening at: ...",
    # uvicorn "Uvicorn running on ...", werkzeug "Running on ...", Node "Server running at ..."
    re.compile(rf"\b(?:[Ll]istening|[Rr]unning) (?:on|at):? {_URL}"),
    # "Server listening on port 3000", "Listening on port 8080", "listening on TCP port 8080"
    re.compile(rf"\b[Ll]istening on (?:TCP |tcp |http )?port {_PORT}\b(?![.:]\d)"),
    # Spring Boot: "Tomcat started on port(s): 8080 (http) 8443 (https)", "Netty started on
    # port 8080", "Jetty started on port(s) 8080 (http/1.1)", "Undertow started on port(s) 8080";
    # Node and others: "Server started on port 3000"
    re.compile(r"\b(?:(?P<server>Tomcat|Netty|Jetty|Undertow)|[Ss]erver|HTTP server) "
               r"started on port(?:\(s\))?:? "
               r"(?P<ports>\d{1,5}(?: \([\w/.]+\))?(?:,? \d{1,5}(?: \([\w/.]+\))?)*)"),
    # sshd: "Server listening on 0.0.0.0 port 22." / "Server listening on :: port 22."
    re.compile(r"\b[Ll]istening on (?P<host>[0-9A-Fa-f:.]+|\*) port (?P<port>\d{1,5})\b"),
    # PostgreSQL: 'listening on IPv4 address "0.0.0.0", port 5432'
    re.compile(r'\blistening on IPv[46] address "(?P<host>[^"]*)", port (?P<port>\d{1,5})\b'),
)
_NEGATED = re.compile(
    r"\b(?:not|no longer|stop(?:ped)?|fail(?:ed|ure)?|error|unable|could not|cannot|can't)\b",
    re.I,
)
_UDP = re.compile(r"\budp[46]?\b", re.I)  # a datagram port: no TCP listener to expect
_WILDCARD = frozenset({"", "*", "0.0.0.0", "::", "[::]", "[::0]", "0"})
_PORTS = re.compile(r"\d{1,5}")


def listen_event(frame: Frame, line: str, location: Location, host: str | None) -> Event | None:
    """The ``app-listening`` event of a program's announcement, or None when it is none."""
    if frame.program is None:
        return None
    found = announced(frame.message)
    if found is None:
        return None
    ports, address, extra = found
    extra = {**frame.extra, **extra}
    if "systemd_unit" in extra:
        extra["unit"] = extra.pop("systemd_unit")
    if len(ports) > 1:
        extra["ports"] = list(ports)
    return Event(
        timestamp=frame.timestamp,
        location=location,
        dataset="app",
        action=ACTION,
        kind="event",
        category=("process", "network"),
        type=("start", "info"),
        log_level=frame.level,
        destination_ip=address,
        destination_port=ports[0],
        transport="tcp",
        process_pid=frame.pid,
        process_name=frame.program,
        host_name=frame.host or host,
        message=frame.message,
        original=line,
        time_relative=frame.relative,
        extra=extra,
    )


def announced(message: str) -> tuple[tuple[int, ...], str | None, dict[str, Any]] | None:
    """(ports, bound address or None for a wildcard, details) a message announces."""
    for pattern in _SHAPES:
        m = pattern.search(message)
        if m is None:
            continue
        if _NEGATED.search(message, 0, m.start()) or _UDP.search(message):
            return None
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        if "ports" in groups:
            ports = tuple(int(p) for p in _PORTS.findall(groups["ports"]))
        else:
            ports = (int(groups["port"]),)
        if not ports or not all(0 < p < 65536 for p in ports):
            return None
        extra: dict[str, Any] = {}
        if "scheme" in groups:
            extra["scheme"] = groups["scheme"]
        if "server" in groups:
            extra["server"] = groups["server"]
        host = groups.get("host", "")
        bracket = ":" in host and not host.startswith("[")
        extra["listen"] = f"[{host}]:{ports[0]}" if bracket else f"{host or '*'}:{ports[0]}"
        if host in _WILDCARD or host.strip("[]") in _WILDCARD:
            return ports, None, extra
        return ports, _ip(host.strip("[]")), extra
    return None


def _ip(text: str) -> str | None:
    """``text`` when it is an IP address (a host name is kept in ``auditor.listen`` only)."""
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None
