"""The one vocabulary shared by parsers, fact builders, the engine and the cause catalog.

Every event action a parser may emit is registered here with its *roles* (how the
engine treats it); every fact a fact builder (or the engine) may state is registered
with its parameters; every ``{placeholder}`` a remedy template may use is registered
with whether it is always known. The catalog loader rejects a YAML reference to
anything not in this registry, and the generated docs (``docs/causes.md``) list it.

This module depends on nothing of auditor but :mod:`auditor.models`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from auditor.models import Limit, Location

# Roles of an event action.
FAILURE = "failure"  # one failed connection: counted as a reset of its group
CONTEXT = "context"  # the host's state (a kill, a reload): feeds the context index only
HOST_WIDE = "host-wide"  # a kernel/host failure that is also context for other groups
PACKET = "packet"  # a logged packet, traced through the firewall rules
UNCERTAIN = "uncertain"  # a failure only when the trace shows the packet refused
DROPPED = "dropped"  # the line says the packet was dropped: no reset, unless the trace says so
ZONE = "zone"  # names an nginx limit zone (its use is read from the logs)
LISTEN = "listen"  # a program announced the port it listens on (kept per program and port)
ROLES = (FAILURE, CONTEXT, HOST_WIDE, PACKET, UNCERTAIN, DROPPED, ZONE, LISTEN)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One event action (``event.action``) and how the engine reads it."""

    name: str
    roles: frozenset[str]
    doc: str


@dataclass(frozen=True, slots=True)
class FactSpec:
    """One fact about the host (or about one group of resets) and its parameters."""

    name: str
    params: tuple[str, ...]
    doc: str
    group: bool = False  # stated by the engine about one group, not by a fact builder


@dataclass(frozen=True, slots=True)
class PlaceholderSpec:
    """One ``{placeholder}`` of remedy templates.

    ``always``: known for every finding. Otherwise ``fallback`` is the wording used when
    the value is unknown; a placeholder without one may only appear inside an optional
    section ``[[...]]`` of a remedy, which is left out when one of its values is unknown.
    """

    name: str
    doc: str
    always: bool = False
    fallback: str | None = None


def _actions(*rows: tuple[str, str, str]) -> Mapping[str, ActionSpec]:
    return {
        name: ActionSpec(name, frozenset(r for r in roles.split() if r), doc)
        for name, roles, doc in rows
    }


ACTIONS: Mapping[str, ActionSpec] = _actions(
    # kernel / netfilter
    ("firewall-reject", "failure packet", "a LOG/NFLOG rule logged a rejected packet"),
    ("firewall-drop", "failure packet dropped", "a LOG/NFLOG rule logged a dropped packet"),
    ("firewall-rate-limit", "failure packet", "a packet logged by a rate-limit rule"),
    ("firewall-log", "failure packet uncertain",
     "a packet logged by a LOG rule whose prefix names no verdict"),
    ("firewall-accept", "context", "a packet logged by an ACCEPT rule"),
    ("firewall-audit", "context", "a netfilter AUDIT record"),
    ("conntrack-table-full", "failure host-wide", "nf_conntrack: table full, dropping packet"),
    ("conntrack-drop", "failure host-wide", "conntrack dropped a packet"),
    ("conntrack-invalid", "failure", "a packet conntrack found INVALID"),
    ("syn-flood", "failure host-wide", "Possible SYN flooding on port N"),
    ("orphan-sockets", "failure host-wide", "too many orphaned sockets"),
    ("tcp-memory-pressure", "failure host-wide", "TCP: out of memory -- consider tuning tcp_mem"),
    ("file-max-reached", "failure host-wide", "VFS: file-max limit reached"),
    ("oom-kill", "context", "the OOM killer killed a process"),
    ("oom-constraint", "context", "the OOM killer's constraint line (cgroup of the kill)"),
    # kernel trace (tcp_send_reset / kfree_skb / tcp_receive_reset): a reset this host sent
    # is a failure; a reset received and a dropped packet are context for those groups
    ("kernel-reset-no-socket", "failure", "a reset sent: no socket for the segment"),
    ("kernel-reset-abort-on-close", "failure", "a reset sent: closed with unread data"),
    ("kernel-reset-abort-on-linger", "failure", "a reset sent: linger timeout"),
    ("kernel-reset-abort-on-memory", "failure host-wide", "a reset sent: out of TCP memory"),
    ("kernel-reset-abort-on-data", "failure", "a reset sent: data after the close"),
    ("kernel-reset-state", "failure", "a reset sent: segment invalid in the TCP state"),
    ("kernel-reset-keepalive-timeout", "failure", "a reset sent: keep-alive timeout"),
    ("kernel-reset-disconnect-with-data", "failure", "a reset sent: disconnect with data"),
    ("kernel-reset-invalid-syn", "failure",
     "a reset sent to a SYN (e.g. a full accept queue with tcp_abort_on_overflow=1)"),
    ("kernel-reset-other", "failure", "a reset sent for another reason (auditor.reason)"),
    ("kernel-reset-received", "context", "a reset this host received"),
    ("kernel-drop-netfilter", "context", "a packet netfilter dropped"),
    ("kernel-drop-listen-overflow", "context", "a handshake dropped on a full accept queue"),
    ("kernel-drop-socket-backlog", "context", "a packet dropped on a full socket backlog"),
    ("kernel-drop-proto-mem", "context", "a packet dropped for lack of protocol memory"),
    ("kernel-drop-other", "context", "a packet dropped for another reason (auditor.reason)"),
    # nginx error log
    ("fd-exhausted", "failure host-wide", "accept() failed (24: Too many open files)"),
    ("worker-connections-exhausted", "failure host-wide", "worker_connections are not enough"),
    ("client-prematurely-closed", "failure", "client prematurely closed connection"),
    ("client-reset", "failure", "recv() failed (104: Connection reset by peer) from the client"),
    ("client-timeout", "failure", "client timed out"),
    ("ssl-handshake-reset", "failure", "the client reset the TLS handshake"),
    ("upstream-reset", "failure", "the upstream reset the connection"),
    ("upstream-prematurely-closed", "failure", "upstream prematurely closed connection"),
    ("upstream-refused", "failure", "connect() to the upstream refused"),
    ("upstream-timeout", "failure", "upstream timed out"),
    ("upstream-unreachable", "failure", "connect() to the upstream: host or network unreachable"),
    ("upstream-no-local-address", "failure", "no local address/port left to reach the upstream"),
    ("client-unreachable", "failure", "the client's host or network is unreachable"),
    ("no-live-upstreams", "failure", "no live upstreams"),
    ("limit-conn", "failure zone", "limiting connections by zone"),
    ("limit-req", "failure zone", "limiting requests by zone"),
    ("nginx-limit-req-delay", "context", "delaying requests by zone (no failure)"),
    ("nginx-signal", "context", "nginx received a signal"),
    ("nginx-reload", "context", "nginx reconfigured"),
    ("nginx-exit", "context", "nginx exited"),
    ("nginx-start", "context", "nginx started"),
    ("worker-exited", "context", "an nginx worker exited"),
    ("connection-left-open", "context", "a stopping nginx worker cut a connection it held"),
    ("nginx-aborting", "context", "an nginx worker aborted its shutdown"),
    # systemd's own lines about services (syslog or the journal)
    ("unit-stopping", "context", "systemd began to stop a service"),
    ("unit-stopped", "context", "systemd stopped a service"),
    ("unit-started", "context", "systemd started a service"),
    ("unit-stop-timeout", "context", "a service's stop timed out and it was killed"),
    ("unit-killed", "context", "a service's process was killed by a signal"),
    ("unit-failed", "context", "a service failed (timeout, signal, exit code)"),
    ("unit-deactivated", "context",
     "a unit went inactive (a stopped service, or a oneshot job that finished)"),
    # programs' own lines (syslog or the journal)
    ("app-listening", "context listen",
     "a program announced the address and port it listens on (destination.port)"),
    # nginx access log
    ("http-no-response", "failure", "status 444: nginx closed without a response"),
    ("http-client-closed", "failure", "status 499: the client closed the request"),
    ("http-bad-gateway", "failure", "status 502"),
    ("http-service-unavailable", "failure", "status 503"),
    ("http-gateway-timeout", "failure", "status 504"),
)

FACTS: Mapping[str, FactSpec] = {
    f.name: f
    for f in (
        # stated by the engine about one group of resets
        FactSpec("logged-as-invalid", (), "the group's packets were logged by an INVALID rule",
                 group=True),
        FactSpec("rejected-only-as-invalid", (),
                 "the traced packet is refused only when conntrack finds it INVALID", group=True),
        FactSpec("no-listener", ("port",), "nothing listens on the reported port", group=True),
        FactSpec("announced-unheld", ("port", "process"),
                 "a program said it listens on the port; nothing listens there at capture time",
                 group=True),
        FactSpec("announced-moved", ("port", "process", "now_port"),
                 "the program later said it listens on another port, which is held now",
                 group=True),
        FactSpec("failures-spread", (),
                 "the group's failures come one at a time, seconds apart, not in a burst",
                 group=True),
        FactSpec("failures-non-idempotent", (),
                 "every failed request is one nginx does not retry on another connection "
                 "(POST, PATCH, LOCK)", group=True),
        FactSpec("failures-retried", (),
                 "nginx logged more upstream failures than its clients saw: it retried some "
                 "on a fresh connection", group=True),
        # the nginx configuration
        FactSpec("return-444", (), "nginx closes some requests without a response (return 444)"),
        FactSpec("upstream-keepalive", ("upstream",), "nginx keeps idle upstream connections"),
        FactSpec("limit-conn", ("zone",), "nginx limits connections (limit_conn)"),
        FactSpec("limit-req", ("zone",), "nginx limits requests (limit_req)"),
        FactSpec("worker-connections-above-nofile",
                 ("worker_connections", "worker_processes", "nofile", "total"),
                 "nginx may open more connections than its workers may open files"),
        FactSpec("worker-connections-small", ("worker_connections", "busiest"),
                 "nginx worker_connections is small, or a worker is near it"),
        FactSpec("listen-backlog-capped", ("port", "backlog", "somaxconn"),
                 "a listen backlog above net.core.somaxconn is silently capped"),
        FactSpec("upstream-keepalive-outlives-server",
                 ("upstream", "server", "nginx_timeout", "server_timeout"),
                 "nginx keeps idle upstream connections longer than the server does"),
        # limits, listeners and processes
        FactSpec("listener-queue-full", ("port", "address", "backlog", "queued", "process"),
                 "a listener's accept queue is at its backlog"),
        FactSpec("syn-backlog-small", ("syn_backlog", "largest_backlog", "syncookies"),
                 "tcp_max_syn_backlog below the largest listen backlog, or SYN cookies off"),
        FactSpec("process-near-nofile", ("pid", "process", "open", "nofile"),
                 "a process holds nearly as many descriptors as its RLIMIT_NOFILE"),
        FactSpec("conntrack-timeout-below-keepalive",
                 ("timeout", "keepalive", "keepalive_name", "loose"),
                 "conntrack forgets established connections before keep-alive reuses them"),
    )
}

PLACEHOLDERS: Mapping[str, PlaceholderSpec] = {
    p.name: p
    for p in (
        PlaceholderSpec("count", "resets in the finding", always=True),
        PlaceholderSpec("first_seen", "first reset (ISO time)", always=True),
        PlaceholderSpec("last_seen", "last reset (ISO time)", always=True),
        PlaceholderSpec("port", "the first port the resets concern", fallback="the port"),
        PlaceholderSpec("ports", "every port the resets concern", fallback="the port"),
        PlaceholderSpec("client", "the client seen most", fallback="the client"),
        PlaceholderSpec("clients", "up to three clients", fallback="the clients"),
        PlaceholderSpec("upstream", "the upstream address", fallback="the upstream"),
        PlaceholderSpec("upstreams", "the upstream addresses", fallback="the upstream"),
        PlaceholderSpec("process", "the process killed", fallback="the process"),
        PlaceholderSpec("pid", "its pid"),
        PlaceholderSpec("rule_text", "the firewall rule that decided"),
        PlaceholderSpec("rule_where", "its table, chain and position", fallback="the rule"),
        PlaceholderSpec("rule_delete", "the command that deletes it"),
        PlaceholderSpec("rule_packets", "its packet counter"),
        PlaceholderSpec("rule_condition", "the condition under which it decided",
                        fallback="its condition held"),
        PlaceholderSpec("limit_name", "the limit reached", fallback="the limit"),
        PlaceholderSpec("limit_value", "its value"),
        PlaceholderSpec("limit_observed", "its use"),
        PlaceholderSpec("limit_suggested", "a new value derived from the value and its use"),
        PlaceholderSpec("limit_unit", "its unit", fallback=""),
        PlaceholderSpec("limit_where", "where it is set (file:line)",
                        fallback="its configuration"),
        PlaceholderSpec("listeners", "the listeners that exist, nearest to the port first"),
        PlaceholderSpec("program", "the program that said it listens on the port"),
        PlaceholderSpec("moved_to", "the port that program said it listens on later"),
    )
}


def actions_with(role: str) -> frozenset[str]:
    """Every registered action that has ``role``."""
    return frozenset(a.name for a in ACTIONS.values() if role in a.roles)


Scalar = int | float | str


@dataclass(frozen=True, slots=True)
class Fact:
    """One typed fact with its evidence values and where it shows.

    ``name`` and the keys of ``params`` are those of :data:`FACTS`; ``limit`` is the
    limit the fact is about (its values fill a remedy's ``limit_*`` placeholders) and
    ``suggested`` a new value derived from the observed use, when the builder knows one.
    """

    name: str
    params: tuple[tuple[str, Scalar], ...] = ()
    location: Location | None = None
    limit: Limit | None = None
    suggested: Scalar | None = None
    ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        spec = FACTS.get(self.name)
        if spec is None:
            raise ValueError(f"unregistered fact {self.name!r}")
        unknown = {k for k, _ in self.params} - set(spec.params)
        if unknown:
            raise ValueError(f"fact {self.name}: unregistered parameters {sorted(unknown)}")

    def get(self, key: str) -> Scalar | None:
        return next((v for k, v in self.params if k == key), None)

    @property
    def text(self) -> str:
        """``name k=v ...``, e.g. ``listener-queue-full port=9000 backlog=1 queued=1``."""
        return " ".join([self.name, *(f"{k}={_show(v)}" for k, v in self.params)])


def fact(name: str, location: Location | None = None, limit: Limit | None = None,
         suggested: Scalar | None = None, ports: tuple[int, ...] = (),
         **params: Scalar | None) -> Fact:
    """A :class:`Fact`; parameters given as None are left out (unknown, not "None")."""
    return Fact(
        name,
        tuple((k, v) for k, v in params.items() if v is not None),
        location,
        limit,
        suggested,
        ports,
    )


def _show(value: Scalar) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
