"""nginx fact builders that need no log: worker connections against fd limits, listen
backlogs against somaxconn, keep-alive timeouts against conntrack's and the upstream's own,
and the directives the catalog asks about (``return 444``, upstream keepalive, limit zones).

Like :mod:`auditor.limits.facts`, they state facts with their values, never causes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from auditor.limits import _nginx
from auditor.models import Limit, Location
from auditor.vocabulary import Fact, fact

if TYPE_CHECKING:
    from auditor.limits.snapshot import HostState
    from auditor.nginx.config import NginxConfig

SMALL_WORKER_CONNECTIONS = 512


def worker_connections(state: HostState) -> list[Fact]:
    """worker_connections x worker_processes above the workers' open-file limit, or small."""
    cfg = state.nginx
    wc = _nginx.safe(cfg, lambda c: c.worker_connections, None)
    if wc is None:
        return []
    workers = [p for p in state.processes if p.is_nginx_worker]
    count, _ = _nginx.worker_processes(cfg, len(workers))
    rlimit = _nginx.safe(cfg, lambda c: c.worker_rlimit_nofile, None)
    soft = [p.nofile_soft for p in workers if p.nofile_soft]
    nofile = rlimit.value if rlimit is not None else (min(soft) if soft else None)
    busiest = max((p.open_fds or 0 for p in workers), default=0)
    total = wc.value * count if count else None
    if nofile is not None and total is not None and total > nofile:
        where = rlimit.location if rlimit is not None else wc.location
        return [
            fact(
                "worker-connections-above-nofile",
                where,
                Limit("nginx worker_rlimit_nofile", nofile, None, "files", "nginx", where),
                max(2 * wc.value, nofile),
                worker_connections=wc.value,
                worker_processes=count,
                nofile=nofile,
                total=total,
            )
        ]
    if wc.value < SMALL_WORKER_CONNECTIONS or (busiest and busiest >= 0.8 * wc.value):
        return [
            fact(
                "worker-connections-small",
                wc.location,
                Limit("nginx worker_connections", wc.value, busiest or None, "connections",
                      "nginx", wc.location),
                max(4 * wc.value, 1024),
                worker_connections=wc.value,
                busiest=busiest or None,
            )
        ]
    return []


def backlog_capped(state: HostState) -> list[Fact]:
    """nginx ``listen`` backlogs (511 by default) above net.core.somaxconn."""
    somax = state.limit("net.core.somaxconn")
    if somax is None or not isinstance(somax.value, int):
        return []
    out = []
    for li in _nginx.safe_list(state.nginx, lambda c: c.listens):
        backlog = li.backlog if li.backlog is not None else 511
        if backlog <= somax.value:
            continue
        out.append(
            fact(
                "listen-backlog-capped",
                li.location,
                Limit(somax.name, somax.value, backlog, "connections", "host", somax.location),
                backlog,
                (li.port,) if li.port else (),
                port=li.port,
                backlog=backlog,
                somaxconn=somax.value,
            )
        )
    return out


def _keepalive_uses(state: HostState) -> list[tuple[str, float, Location | None]]:
    cfg = state.nginx
    uses: list[tuple[str, float, Location | None]] = []
    for s in _nginx.safe_list(cfg, lambda c: c.keepalive_timeout):
        if s.location is not None:
            uses.append(("nginx keepalive_timeout", s.value, s.location))
    for up in _nginx.safe_list(cfg, lambda c: c.upstreams):
        if up.keepalive:
            uses.append(
                (f"upstream {up.name} keepalive_timeout", up.keepalive_timeout or 60.0, up.location)
            )
    keepalive_time = state.limit("net.ipv4.tcp_keepalive_time")
    if keepalive_time is not None and isinstance(keepalive_time.value, int):
        uses.append(
            ("net.ipv4.tcp_keepalive_time", float(keepalive_time.value), keepalive_time.location)
        )
    return uses


def conntrack_timeout_short(state: HostState) -> list[Fact]:
    """An established-connection conntrack timeout shorter than a keep-alive that outlives it."""
    est = state.limit("net.netfilter.nf_conntrack_tcp_timeout_established")
    if est is None or not isinstance(est.value, int):
        return []
    longer = [u for u in _keepalive_uses(state) if u[1] > est.value]
    if not longer:
        return []
    loose = state.sysctls.int("net.netfilter.nf_conntrack_tcp_loose")
    name, seconds, _ = max(longer, key=lambda u: u[1])
    return [
        fact(
            "conntrack-timeout-below-keepalive",
            est.location,
            Limit(est.name, est.value, seconds, "s", "host", est.location),
            int(max(seconds, 0) + 60),
            timeout=est.value,
            keepalive=seconds,
            keepalive_name=name,
            loose=loose,
        )
    ]


def _server_idle_timeouts(cfg: NginxConfig) -> dict[int, tuple[float, Location | None]]:
    """Port -> keepalive_timeout of the nginx server blocks listening on it (same config)."""
    http = [d for d in cfg.find("keepalive_timeout") if d.context == ("http",)]
    default = _nginx.safe(cfg, lambda c: c.keepalive_timeout[0], None)
    fallback = (default.value, default.location) if default is not None and http else (75.0, None)
    out: dict[int, tuple[float, Location | None]] = {}
    for idx, block in enumerate(cfg.directives):
        if block.name != "server" or not block.block or block.context != ("http",):
            continue
        kids = [d for d in cfg.directives if d.parent == idx]
        own = next((d for d in kids if d.name == "keepalive_timeout" and d.args), None)
        value = fallback
        if own is not None:
            from auditor.nginx.model import parse_time

            try:
                value = (parse_time(own.args[0]), own.location)
            except ValueError:
                continue
        for d in kids:
            if d.name == "listen" and d.args:
                port = d.args[0].rsplit(":", 1)[-1]
                if port.isdigit():
                    out[int(port)] = value
    return out


def upstream_keepalive_race(state: HostState) -> list[Fact]:
    """Upstreams nginx keeps idle connections to longer than the server (same config) does."""
    cfg = state.nginx
    if cfg is None:
        return []
    idle: dict[int, tuple[float, Location | None]] = _nginx.safe(cfg, _server_idle_timeouts, {})
    out = []
    for up in _nginx.safe_list(cfg, lambda c: c.upstreams):
        if not up.keepalive:
            continue
        ours = up.keepalive_timeout or 60.0
        for server in up.servers:
            port = server.address.rsplit(":", 1)[-1]
            theirs = idle.get(int(port)) if port.isdigit() else None
            if theirs is None or ours <= theirs[0]:
                continue
            out.append(
                fact(
                    "upstream-keepalive-outlives-server",
                    up.location,
                    # The limit is the upstream's idle timeout; nginx's keep-alive uses it.
                    Limit(f"keepalive_timeout of {server.address} (upstream {up.name})",
                          theirs[0], ours, "s", "nginx", theirs[1]),
                    max(int(theirs[0]) - 1, 1),
                    upstream=up.name,
                    server=server.address,
                    nginx_timeout=ours,
                    server_timeout=theirs[0],
                )
            )
    return out


def directives(state: HostState) -> list[Fact]:
    """The directives the catalog asks about, each stated once where it first appears."""
    cfg = state.nginx
    out: list[Fact] = []
    first_444 = next(iter(_nginx.safe_list(cfg, lambda c: c.return_444)), None)
    if first_444 is not None:
        out.append(fact("return-444", first_444.location))
    kept = [u for u in _nginx.safe_list(cfg, lambda c: c.upstreams) if u.keepalive]
    if kept:
        out.append(fact("upstream-keepalive", kept[0].location, upstream=kept[0].name))
    for name, items in (
        ("limit-conn", _nginx.safe_list(cfg, lambda c: c.limit_conns)),
        ("limit-req", _nginx.safe_list(cfg, lambda c: c.limit_reqs)),
    ):
        if items:
            out.append(fact(name, items[0].location, zone=items[0].zone))
    return out


# The facts these builders state (registered in auditor.vocabulary.FACTS).
STATES = frozenset(
    {
        "worker-connections-above-nofile",
        "worker-connections-small",
        "listen-backlog-capped",
        "conntrack-timeout-below-keepalive",
        "upstream-keepalive-outlives-server",
        "return-444",
        "upstream-keepalive",
        "limit-conn",
        "limit-req",
    }
)
BUILDERS: tuple[Callable[[HostState], list[Fact]], ...] = (
    worker_connections,
    backlog_capped,
    conntrack_timeout_short,
    upstream_keepalive_race,
    directives,
)
