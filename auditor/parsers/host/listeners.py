"""Listening sockets from ``ss`` output (``ss -tlnpi``, ``ss -ltn``, sosreport's ``ss -peaonmi``).

For a listening TCP socket ``Recv-Q`` is the accept queue (connections the
application has not yet accepted) and ``Send-Q`` the effective backlog (the
``listen()`` backlog after the kernel capped it at ``net.core.somaxconn``).
A queue at its backlog means new handshakes are dropped (or reset, with
``tcp_abort_on_overflow=1``).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from auditor.models import Location, ParseIssue
from auditor.parsers.host._text import issue

PARSER = "ss"
LIVE_COMMAND = ("ss", "-tlnpi")
_STATES = {
    "LISTEN",
    "UNCONN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
    "CLOSED",
    "UNKNOWN",
}
_NETIDS = {
    "tcp",
    "udp",
    "raw",
    "u_str",
    "u_dgr",
    "u_seq",
    "nl",
    "p_raw",
    "p_dgr",
    "mptcp",
    "sctp",
    "tipc",
    "v_str",
    "v_dgr",
    "xdp",
    "icmp6",
    "u_seqpacket",
}
_USER = re.compile(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)')


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket with its queue, backlog and owning processes."""

    address: str  # as ss prints it, without brackets: 0.0.0.0, ::, *, 127.0.0.53%lo
    port: int
    recv_q: int  # accept queue length now
    send_q: int  # effective backlog
    netid: str = "tcp"
    processes: tuple[tuple[str, int, int], ...] = ()  # (name, pid, fd)
    location: Location | None = None

    @property
    def endpoint(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )

    @property
    def full(self) -> bool:
        """The accept queue is at (or beyond) its backlog: the next handshake is dropped."""
        return self.recv_q > 0 and self.recv_q >= self.send_q

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(sorted({pid for _, pid, _ in self.processes}))


def _split_endpoint(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def parse_text(text: str, origin: str) -> tuple[tuple[Listener, ...], tuple[ParseIssue, ...]]:
    """Listening TCP sockets in ``ss`` output; rows of other states are skipped, not errors."""
    found: list[Listener] = []
    issues: list[ParseIssue] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw[0] in " \t" or raw.startswith("#"):
            continue  # blank, or -i/-m/-e continuation line
        tokens = raw.split()
        if tokens[0] in ("State", "Netid"):
            continue
        netid = "tcp"
        if tokens[0] in _NETIDS:
            netid = tokens.pop(0)
        if not tokens or tokens[0] not in _STATES or len(tokens) < 5:
            issues.append(issue(origin, n, PARSER, "not an ss socket row", raw))
            continue
        state = tokens[0]
        if state != "LISTEN" or netid not in ("tcp", "mptcp"):
            continue
        local = _split_endpoint(tokens[3])
        if not (tokens[1].isdigit() and tokens[2].isdigit()) or local is None:
            issues.append(
                issue(origin, n, PARSER, "queue sizes or local address not understood", raw)
            )
            continue
        users = tuple((name, int(pid), int(fd)) for name, pid, fd in _USER.findall(raw))
        found.append(
            Listener(
                local[0],
                local[1],
                int(tokens[1]),
                int(tokens[2]),
                netid,
                users,
                Location(origin, n),
            )
        )
    return tuple(found), tuple(issues)


def run_live(command: tuple[str, ...] = LIVE_COMMAND, timeout: float = 20.0) -> str:
    """Output of ``ss -tlnpi`` in the current network namespace (OSError when ss is missing)."""
    proc = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise OSError(f"{' '.join(command)}: exit {proc.returncode}: {proc.stderr.strip()[:200]}")
    return proc.stdout
