"""nginx checks that need no log: worker connections against fd limits, listen backlogs
against somaxconn, keep-alive timeouts against conntrack's and against the upstream's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from auditor.limits import _nginx
from auditor.limits._findings import (
    NOW,
    RISK,
    config_evidence,
    finding,
    limit_dict,
    limit_evidence,
    score_with,
)
from auditor.models import Evidence, Finding, Location

if TYPE_CHECKING:
    from auditor.limits.snapshot import HostState
    from auditor.nginx.config import NginxConfig

SMALL_WORKER_CONNECTIONS = 512


def worker_connections(state: HostState) -> list[Finding]:
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
    ev: list[Evidence] = [config_evidence(wc.location, f"worker_connections {wc.value};")]
    if rlimit is not None:
        ev.append(config_evidence(rlimit.location, f"worker_rlimit_nofile {rlimit.value};"))
    ev += [limit_evidence(x) for x in state.limits if x.name == "open files" and "nginx" in x.scope]
    total = wc.value * count if count else None
    if nofile is not None and total is not None and total > nofile:
        score = NOW if wc.value > nofile else RISK
        return [
            finding(
                "nginx-worker-connections",
                "nginx worker_connections above the workers' open-file limit",
                score,
                f"worker_connections {wc.value} x worker_processes {count} = {total} connections, "
                f"but each worker may open only {nofile} files (a proxied request takes two): "
                "accept() fails with 'Too many open files' and clients are reset.",
                f"Set worker_rlimit_nofile {max(2 * wc.value, nofile)}; in the main context "
                f"(or LimitNOFILE={max(2 * wc.value, nofile)} for the service), keeping "
                f"worker_connections {wc.value}.",
                "nginx",
                limit_dict(
                    "worker_connections",
                    wc.value,
                    busiest or None,
                    worker_processes=count,
                    nofile=nofile,
                    total=total,
                ),
                ev,
            )
        ]
    if wc.value < SMALL_WORKER_CONNECTIONS or (busiest and busiest >= 0.8 * wc.value):
        near = bool(busiest and busiest >= 0.8 * wc.value)
        target = max(4 * wc.value, 1024)
        return [
            finding(
                "nginx-worker-connections",
                "nginx worker_connections small",
                NOW if near else RISK,
                f"worker_connections is {wc.value}"
                + (f" and a worker holds {busiest} descriptors" if busiest else "")
                + ": beyond it nginx logs 'worker_connections are not enough' and drops "
                "connections.",
                f"worker_connections {target}; in events {{}} with worker_rlimit_nofile "
                f"{2 * target}; (and a matching LimitNOFILE).",
                "nginx",
                limit_dict("worker_connections", wc.value, busiest or None, worker_processes=count),
                ev,
            )
        ]
    return []


def backlog_capped(state: HostState) -> list[Finding]:
    somax = state.limit("net.core.somaxconn")
    if somax is None or not isinstance(somax.value, int):
        return []
    out = []
    for li in _nginx.safe_list(state.nginx, lambda c: c.listens):
        backlog = li.backlog if li.backlog is not None else 511
        if backlog <= somax.value:
            continue
        text = f"listen {li.address}:{li.port}" + (
            f" backlog={li.backlog}" if li.backlog is not None else " (default backlog 511)"
        )
        out.append(
            finding(
                "listen-backlog-capped",
                "nginx listen backlog silently capped by somaxconn",
                RISK,
                f"nginx asks for a backlog of {backlog} on port {li.port} but net.core.somaxconn "
                f"= {somax.value} caps it: the accept queue holds only {somax.value}.",
                f"sysctl -w net.core.somaxconn={backlog} (persist in /etc/sysctl.d/), then "
                "reload nginx so that it listens again.",
                "kernel",
                limit_dict("listen backlog", backlog, somax.value, somaxconn=somax.value),
                [config_evidence(li.location, text), limit_evidence(somax)],
                (li.port,) if li.port else (),
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


def conntrack_timeout_short(state: HostState) -> list[Finding]:
    est = state.limit("net.netfilter.nf_conntrack_tcp_timeout_established")
    if est is None or not isinstance(est.value, int):
        return []
    longer = [u for u in _keepalive_uses(state) if u[1] > est.value]
    if not longer:
        return []
    loose = state.sysctls.int("net.netfilter.nf_conntrack_tcp_loose")
    name, seconds, _ = max(longer, key=lambda u: u[1])
    target = int(max(seconds, 0) + 60)
    return [
        finding(
            "conntrack-timeout-short",
            "conntrack forgets idle connections before keep-alive does",
            RISK,
            f"nf_conntrack_tcp_timeout_established = {est.value} s is shorter than {name} = "
            f"{seconds:g} s: an idle kept-alive connection loses its conntrack entry, and its "
            "next packet is INVALID"
            + (" (nf_conntrack_tcp_loose=0: not picked up again)" if loose == 0 else "")
            + ", dropped or reset by the firewall.",
            f"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established={target} "
            f"(above {seconds:g} s), or shorten {name} below {est.value} s.",
            "firewall",
            limit_dict(est.name, est.value, seconds, longest_keepalive=name),
            [
                limit_evidence(est),
                *(config_evidence(loc, f"{n} = {v:g} s") for n, v, loc in longer),
            ],
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


def upstream_keepalive_race(state: HostState) -> list[Finding]:
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
                finding(
                    "upstream-keepalive-race",
                    f"upstream {up.name}: nginx keeps idle connections longer than the upstream",
                    score_with(RISK, [], state),
                    f"nginx reuses idle connections to {server.address} for {ours:g} s but the "
                    f"upstream closes them after {theirs[0]:g} s: a request sent as it closes "
                    "meets a reset (upstream prematurely closed / reset by peer).",
                    f"In upstream {up.name} set keepalive_timeout {max(int(theirs[0]) - 1, 1)}s; "
                    "(below the upstream's idle timeout), or raise the upstream's timeout above "
                    f"{ours:g} s.",
                    "upstream",
                    # The limit is the upstream's idle timeout; nginx's keep-alive uses it.
                    limit_dict(
                        f"keepalive_timeout of {server.address} (upstream {up.name})",
                        theirs[0],
                        ours,
                        upstream=up.name,
                        server=server.address,
                    ),
                    [
                        config_evidence(
                            up.location, f"upstream {up.name} keepalive_timeout {ours:g}s"
                        ),
                        config_evidence(
                            theirs[1], f"{server.address} keepalive_timeout {theirs[0]:g}s"
                        ),
                    ],
                )
            )
    return out


CHECKS: tuple[Callable[[HostState], list[Finding]], ...] = (
    worker_connections,
    backlog_capped,
    conntrack_timeout_short,
    upstream_keepalive_race,
)
