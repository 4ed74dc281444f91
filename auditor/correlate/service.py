"""The port clients connect to, for failures nginx saw on the way to an upstream.

An upstream's reset, crash, keep-alive race or a client abort is logged with the
upstream's address; the clients never see that port. They connect to a port nginx
listens on: the one the ``Host`` header names (``host: "example.org:8443"``), or
those of the ``server`` block the request matched (its ``listen`` directives, by
``server_name``), or, when nginx has a single listening port, that one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from auditor.correlate.grouping import Group
from auditor.models import Event
from auditor.parsers.nginx_error import host_port


def _host_port(host: Any) -> int | None:
    """The port of a ``host:port`` (a Host header, an upstream address), if it names one."""
    if not isinstance(host, str) or not host:
        return None
    port = host_port(host)[1]
    return port if port is not None and 0 < port < 65536 else None


def service_ports(
    events: Iterable[Event], listens: Sequence[Any], upstream: str | None = None
) -> tuple[int, ...]:
    """The client-facing ports of requests that failed on the way to an upstream
    (``listens``: the nginx configuration's Listen records; empty when unknown). A
    ``listen`` on the upstream's own port is the upstream (nginx proxying to itself)."""
    up_port = _host_port(upstream)
    listens = [x for x in listens if getattr(x, "port", None) != up_port]
    from_host: Counter[int] = Counter()
    servers: Counter[str] = Counter()
    for event in events:
        extra = event.extra or {}
        port = _host_port(extra.get("host"))
        if port is not None:
            from_host[port] += 1
        server = extra.get("server")
        if isinstance(server, str) and server:
            servers[server] += 1
    listening = {x.port for x in listens if getattr(x, "port", None)}
    named = {
        x.port for x in listens
        if getattr(x, "port", None) and set(getattr(x, "server_names", ()) or ()) & set(servers)
    }
    if from_host:
        # a Host header's port counts when nginx listens there (or nothing is known of it)
        known = [p for p in from_host if not listening or p in listening]
        if known:
            return tuple(sorted(known))
    if named:
        return tuple(sorted(named))
    if len(listening) == 1:
        return (next(iter(listening)),)
    return ()


def nginx_front(group: Group, listens: Sequence[Any]) -> tuple[int, ...]:
    """The client-facing ports of a group of nginx failures (its own ports are the
    upstream's, or none); () for other groups or when nothing tells."""
    if not group.datasets or not all(d.startswith("nginx") for d in group.datasets):
        return ()
    own = set(group.ports) | ({group.port} if group.port is not None else set())
    listening = {x.port for x in listens if getattr(x, "port", None)}
    if own and listening and own <= listening:
        return ()  # already the ports nginx listens on
    return service_ports(group.sample_events(), listens, group.upstream)
