"""Building the table of limits: every limit next to its current use, with where it was read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from auditor.limits import _nginx
from auditor.models import Limit, Location
from auditor.parsers.host.listeners import Listener
from auditor.parsers.host.proclimits import ProcessLimits
from auditor.parsers.host.sysctl import IMPORTANT, SysctlSet

if TYPE_CHECKING:
    from auditor.nginx.config import NginxConfig

# sysctl -> the gauge that measures its use
NOT_SET = "not set (the unit's LimitNOFILE applies)"
_USE = {
    "net.netfilter.nf_conntrack_max": "conntrack.entries",
    "net.ipv4.tcp_max_orphans": "sockstat.TCP.orphan",
    "net.ipv4.tcp_max_tw_buckets": "sockstat.TCP.tw",
}
_UNITS = {
    "net.ipv4.tcp_mem": "pages",
    "net.ipv4.tcp_rmem": "bytes",
    "net.ipv4.tcp_wmem": "bytes",
    "net.ipv4.tcp_fin_timeout": "s",
    "net.ipv4.tcp_keepalive_time": "s",
    "net.ipv4.tcp_keepalive_intvl": "s",
}


def _scalar(raw: str) -> int | str:
    try:
        return int(raw)
    except ValueError:
        return raw


def build_limits(
    sysctls: SysctlSet,
    gauges: Mapping[str, int],
    listeners: tuple[Listener, ...],
    processes: list[ProcessLimits],
    nginx: NginxConfig | None,
) -> tuple[Limit, ...]:
    """Host tunables with their use, listener backlogs, process fd limits and nginx's limits."""
    out: list[Limit] = []
    for name in IMPORTANT:
        raw = sysctls.get(name)
        if raw is None or name == "net.netfilter.nf_conntrack_count":
            continue
        loc = sysctls.locations.get(name)
        unit = _UNITS.get(name, "s" if "timeout" in name else "")
        if name == "net.netfilter.nf_conntrack_max":
            count = sysctls.int("net.netfilter.nf_conntrack_count")
            if count is None:
                count = gauges.get("conntrack.entries")
            out.append(Limit(name, sysctls.int(name), count, "entries", "host", loc))
        elif name == "fs.file-nr":
            nums = sysctls.ints(name) or ()
            if len(nums) >= 3:
                out.append(Limit("fs.file-max", nums[2], nums[0], "files", "host", loc))
        elif name == "fs.file-max" and (sysctls.ints("fs.file-nr") or ()):
            continue  # reported with its use from fs.file-nr
        elif name == "net.ipv4.tcp_mem":
            nums = sysctls.ints(name) or ()
            used = gauges.get("sockstat.TCP.mem")
            if len(nums) == 3:
                out.append(Limit("net.ipv4.tcp_mem[pressure]", nums[1], used, "pages", "host", loc))
                out.append(Limit("net.ipv4.tcp_mem[max]", nums[2], used, "pages", "host", loc))
        elif name == "net.ipv4.ip_local_port_range":
            nums = sysctls.ints(name) or ()
            if len(nums) == 2:
                out.append(Limit(name, nums[1] - nums[0] + 1, None, "ports", "host", loc))
        elif name == "net.core.somaxconn":
            longest = max((x.recv_q for x in listeners), default=None)  # longest accept queue
            out.append(Limit(name, sysctls.int(name), longest, "connections", "host", loc))
        else:
            out.append(Limit(name, _scalar(raw), gauges.get(_USE.get(name, "")), unit, "host", loc))
    for x in listeners:
        scope = f"listener {x.endpoint}"
        if x.processes:
            scope += f" ({x.processes[0][0]})"
        out.append(Limit("listen backlog", x.send_q, x.recv_q, "connections", scope, x.location))
    for p in processes:
        out.append(
            Limit(
                "open files",
                p.nofile_soft,
                p.open_fds,
                "files",
                f"pid:{p.pid} {p.label}",
                p.location,
            )
        )
    workers_seen = sum(1 for p in processes if p.is_nginx_worker)
    count, wp = _nginx.worker_processes(nginx, workers_seen)
    if wp is not None:
        out.append(
            Limit(
                "nginx worker_processes",
                count if count is not None else str(wp.value),
                workers_seen or None,
                "processes",
                "nginx",
                wp.location,
            )
        )
    wc = _nginx.safe(nginx, lambda c: c.worker_connections, None)
    if wc is not None:
        # Its use: the descriptors the busiest worker holds (each connection takes one).
        busiest = max((p.open_fds or 0 for p in processes if p.is_nginx_worker), default=0)
        out.append(
            Limit("nginx worker_connections", wc.value, busiest or None, "connections", "nginx",
                  wc.location)
        )
    rl = _nginx.safe(nginx, lambda c: c.worker_rlimit_nofile, None)
    if rl is not None:
        out.append(
            Limit("nginx worker_rlimit_nofile", rl.value, None, "files", "nginx", rl.location)
        )
    elif nginx is not None:
        # Not set: the workers keep the RLIMIT_NOFILE they were started with (the unit's
        # LimitNOFILE=, 1024 soft by default), the per-process limit errno 24 speaks of.
        out.append(
            Limit("nginx worker_rlimit_nofile", NOT_SET, None, "", "nginx", Location(nginx.origin))
        )
    for li in _nginx.safe_list(nginx, lambda c: c.listens):
        endpoint = f"{li.address}:{li.port}" if li.port is not None else li.address
        out.append(
            Limit(
                "nginx listen backlog",
                li.backlog if li.backlog is not None else 511,
                None,
                "connections",
                f"nginx listen {endpoint}",
                li.location,
            )
        )
    out.extend(zone_limits(nginx))
    return tuple(out)


def zone_limits(nginx: NginxConfig | None) -> list[Limit]:
    """Each ``limit_conn``/``limit_req`` as a limit named by its zone; use comes from the logs.

    ``limit_conn perip 3`` is "nginx limit_conn zone=perip" = 3 connections per key;
    ``limit_req zone=api burst=2`` is "nginx limit_req zone=api" = a burst of 2 requests
    above the zone's rate, the quantity nginx compares its logged ``excess`` with.
    """
    zones = {z.name: z for z in _nginx.safe_list(nginx, lambda c: c.limit_conn_zones)}
    out = [
        Limit(f"nginx limit_conn zone={lc.zone}", lc.number, None,
              f"connections per {zones[lc.zone].key}" if lc.zone in zones else "connections",
              "nginx", lc.location)
        for lc in _nginx.safe_list(nginx, lambda c: c.limit_conns)
    ]
    rates = {z.name: z for z in _nginx.safe_list(nginx, lambda c: c.limit_req_zones)}
    for lr in _nginx.safe_list(nginx, lambda c: c.limit_reqs):
        zone = rates.get(lr.zone)
        unit = "requests"
        if zone is not None and zone.rate_text:
            unit += f" above {zone.rate_text}"
        if lr.nodelay:
            unit += ", nodelay"
        out.append(Limit(f"nginx limit_req zone={lr.zone}", lr.burst, None, unit, "nginx",
                         lr.location))
    return out
