"""Findings that hold without any log: limits reached or set so that connections get reset.

:func:`run_checks` returns :class:`~auditor.models.Finding` records whose ``cause``
ids are in the catalog: ``conntrack-table-full``, ``tcp-abort-on-overflow``,
``listen-queue-overflow``, ``syn-backlog-small``, ``fd-exhaustion``,
``tcp-orphans-limit``, ``tcp-memory-pressure``, ``tw-bucket-overflow``,
``conntrack-insert-failed`` here, and the nginx ones in :mod:`.checks_nginx`.
"""

from __future__ import annotations

from collections.abc import Callable

from auditor.limits import checks_nginx
from auditor.limits._findings import (
    MOVED,
    NOW,
    RISK,
    finding,
    limit_dict,
    limit_evidence,
    moved_any,
    score_with,
)
from auditor.limits.snapshot import HostState
from auditor.models import Finding

NEAR = 0.8  # share of a limit that counts as "near"


def conntrack_table(state: HostState) -> list[Finding]:
    lim = state.limit("net.netfilter.nf_conntrack_max")
    drops = moved_any(state, ("conntrack.drop", "conntrack.early_drop"))
    if lim is None or lim.usage is None:
        return []
    usage = lim.usage
    if usage < NEAR and not (drops and not state.since_boot):
        return []
    score = score_with(NOW if usage >= NEAR else RISK, drops, state)
    target = max(int(lim.value) * 2 if isinstance(lim.value, int) else 0, 65536)
    return [
        finding(
            "conntrack-table-full",
            "conntrack table nearly full",
            score,
            f"{lim.observed} of {lim.value} conntrack entries in use ({usage:.0%}); when the "
            "table is full new connections are dropped (kernel: 'nf_conntrack: table full').",
            f"sysctl -w net.netfilter.nf_conntrack_max={target} (persist in /etc/sysctl.d/), "
            f"raise nf_conntrack_buckets to {target // 4} (/sys/module/nf_conntrack/parameters/"
            "hashsize), or shorten nf_conntrack_tcp_timeout_* for idle flows.",
            "firewall",
            limit_dict(lim.name, lim.value, lim.observed, usage=round(usage, 3)),
            [limit_evidence(lim), *drops],
        )
    ]


def conntrack_insert_failed(state: HostState) -> list[Finding]:
    ev = moved_any(state, ("conntrack.insert_failed",))
    if not ev or state.since_boot:
        return []
    return [
        finding(
            "conntrack-insert-failed",
            "conntrack insert races",
            MOVED,
            "conntrack entries failed to insert during the window (a clash, often parallel UDP "
            "or NAT port reuse); the packet is dropped.",
            "Upgrade to a kernel with clash resolution, avoid NAT port collisions "
            "(iptables MASQUERADE --random-fully), or spread source ports.",
            "firewall",
            limit_dict("conntrack.insert_failed", None, state.counter("conntrack.insert_failed")),
            ev,
        )
    ]


def abort_on_overflow(state: HostState) -> list[Finding]:
    lim = state.limit("net.ipv4.tcp_abort_on_overflow")
    if lim is None or lim.value != 1:
        return []
    ev = moved_any(state, ("TcpExt.ListenOverflows",))
    return [
        finding(
            "tcp-abort-on-overflow",
            "tcp_abort_on_overflow=1 turns full accept queues into resets",
            score_with(NOW, ev, state),
            "With net.ipv4.tcp_abort_on_overflow=1 a connection that finds the accept queue full "
            "is answered with RST instead of being retried by the client.",
            "sysctl -w net.ipv4.tcp_abort_on_overflow=0 (and persist it), then size the backlog: "
            "raise net.core.somaxconn and the application's listen backlog.",
            "kernel",
            limit_dict(lim.name, lim.value),
            [limit_evidence(lim), *ev],
        )
    ]


def listen_queues(state: HostState) -> list[Finding]:
    out = []
    somaxconn = state.sysctls.int("net.core.somaxconn")
    ev_counters = moved_any(state, ("TcpExt.ListenOverflows", "TcpExt.ListenDrops"))
    for x in state.listeners:
        if not x.full:
            continue
        lim = next(
            (
                li
                for li in state.limits
                if li.name == "listen backlog" and li.location == x.location
            ),
            None,
        )
        who = f" ({x.processes[0][0]} pid {x.processes[0][1]})" if x.processes else ""
        new = max(x.send_q * 4, 1024)
        if somaxconn is not None:
            new = min(new, max(somaxconn, 4096))
        out.append(
            finding(
                "listen-queue-overflow",
                f"accept queue of {x.endpoint} is full",
                score_with(NOW, ev_counters, state),
                f"{x.endpoint}{who} has {x.recv_q} connections waiting to be accepted with a "
                f"backlog of {x.send_q}: new connections are dropped (or reset with "
                "tcp_abort_on_overflow=1).",
                f"Make the application accept faster (more workers), and raise its listen "
                f"backlog to {new} (nginx: listen {x.port} backlog={new};) with "
                f"net.core.somaxconn >= {new}.",
                "kernel",
                limit_dict("listen backlog", x.send_q, x.recv_q, listener=x.endpoint),
                [limit_evidence(lim), *ev_counters] if lim else ev_counters,
                (x.port,),
            )
        )
    if not out and ev_counters and not state.since_boot:
        out.append(
            finding(
                "listen-queue-overflow",
                "accept queues overflowed during the window",
                MOVED,
                "TCP listen queues overflowed while sampling, though no queue was full at the "
                "moment ss ran.",
                "Find the listener with `ss -ltn` (Recv-Q near Send-Q); raise its backlog and "
                "net.core.somaxconn, and make the application accept faster.",
                "kernel",
                limit_dict("TcpExt.ListenOverflows", None, state.counter("TcpExt.ListenOverflows")),
                ev_counters,
            )
        )
    return out


def syn_backlog(state: HostState) -> list[Finding]:
    cookies = state.sysctls.int("net.ipv4.tcp_syncookies")
    lim = state.limit("net.ipv4.tcp_max_syn_backlog")
    if lim is None or not isinstance(lim.value, int) or cookies is None:
        return []
    biggest = max((x.send_q for x in state.listeners), default=0)
    ev = moved_any(state, ("TcpExt.TCPReqQFullDrop", "TcpExt.TCPReqQFullDoCookies"))
    small = lim.value < max(biggest, 1024)
    if not (cookies == 0 and (small or ev)) and not (ev and not state.since_boot):
        return []
    target = max(4096, biggest)
    score = score_with(RISK, ev, state)
    return [
        finding(
            "syn-backlog-small",
            "SYN backlog small" + (" and SYN cookies off" if cookies == 0 else ""),
            score,
            f"net.ipv4.tcp_max_syn_backlog = {lim.value} (largest listen backlog {biggest}), "
            f"tcp_syncookies = {cookies}: under a burst of new connections half-open ones are "
            "dropped.",
            f"sysctl -w net.ipv4.tcp_max_syn_backlog={target}"
            + (" and net.ipv4.tcp_syncookies=1" if cookies == 0 else "")
            + " (persist in /etc/sysctl.d/).",
            "kernel",
            limit_dict(lim.name, lim.value, biggest, tcp_syncookies=cookies),
            [limit_evidence(lim), *ev],
        )
    ]


def fd_exhaustion(state: HostState) -> list[Finding]:
    out = []
    for p in state.processes:
        if not p.nofile_soft or p.open_fds is None or p.open_fds < NEAR * p.nofile_soft:
            continue
        out.append(
            finding(
                "fd-exhaustion",
                f"{p.label} near its open-file limit",
                NOW,
                f"{p.label} holds {p.open_fds} descriptors of its {p.nofile_soft} limit; at the "
                "limit accept() fails (EMFILE) and connections are dropped or reset.",
                f"Raise the limit to {max(p.nofile_soft * 4, 65536)} (systemd LimitNOFILE=, or "
                "nginx worker_rlimit_nofile) and look for descriptor leaks.",
                "nginx" if p.is_nginx else "kernel",
                limit_dict("open files", p.nofile_soft, p.open_fds, pid=p.pid, process=p.name),
                [
                    limit_evidence(x)
                    for x in state.limits
                    if x.name == "open files" and x.scope.startswith(f"pid:{p.pid} ")
                ],
            )
        )
    lim = state.limit("fs.file-max")
    if lim is not None and lim.usage is not None and lim.usage >= NEAR:
        out.append(
            finding(
                "fd-exhaustion",
                "system-wide file handles near fs.file-max",
                NOW,
                f"{lim.observed} of {lim.value} file handles allocated system-wide.",
                f"sysctl -w fs.file-max={int(lim.value) * 2 if isinstance(lim.value, int) else 0}.",
                "kernel",
                limit_dict(lim.name, lim.value, lim.observed),
                [limit_evidence(lim)],
            )
        )
    return out


def _level_check(
    cause: str,
    title: str,
    name: str,
    counters: tuple[str, ...],
    remedy: str,
) -> Callable[[HostState], list[Finding]]:
    def check(state: HostState) -> list[Finding]:
        lim = state.limit(name)
        ev = moved_any(state, counters)
        near = lim is not None and lim.usage is not None and lim.usage >= NEAR
        if lim is None or not (near or (ev and not state.since_boot)):
            return []
        return [
            finding(
                cause,
                title,
                score_with(NOW if near else RISK, ev, state),
                f"{name} = {lim.value}, in use {lim.observed}"
                + (f" ({lim.usage:.0%})" if lim.usage is not None else ""),
                remedy.format(
                    value=lim.value,
                    double=int(lim.value) * 2 if isinstance(lim.value, int) else lim.value,
                ),
                "kernel",
                limit_dict(lim.name, lim.value, lim.observed),
                [limit_evidence(lim), *ev],
            )
        ]

    return check


CHECKS: tuple[Callable[[HostState], list[Finding]], ...] = (
    conntrack_table,
    conntrack_insert_failed,
    abort_on_overflow,
    listen_queues,
    syn_backlog,
    fd_exhaustion,
    _level_check(
        "tcp-orphans-limit",
        "orphaned TCP sockets near tcp_max_orphans",
        "net.ipv4.tcp_max_orphans",
        ("TcpExt.TCPAbortOnMemory",),
        "sysctl -w net.ipv4.tcp_max_orphans={double}; the kernel resets orphans beyond it "
        "('too many orphaned sockets').",
    ),
    _level_check(
        "tcp-memory-pressure",
        "TCP memory at tcp_mem pressure",
        "net.ipv4.tcp_mem[pressure]",
        ("TcpExt.TCPMemoryPressures", "TcpExt.TCPAbortOnMemory"),
        "Raise net.ipv4.tcp_mem (pressure {value} pages now, e.g. to {double}); under pressure "
        "the kernel aborts sockets with RST.",
    ),
    _level_check(
        "tw-bucket-overflow",
        "TIME-WAIT sockets at tcp_max_tw_buckets",
        "net.ipv4.tcp_max_tw_buckets",
        ("TcpExt.TCPTimeWaitOverflow",),
        "sysctl -w net.ipv4.tcp_max_tw_buckets={double}, or reuse connections (keep-alive).",
    ),
    *checks_nginx.CHECKS,
)


def run_checks(state: HostState) -> list[Finding]:
    """Every finding the host state supports, strongest first."""
    found: list[Finding] = []
    for check in CHECKS:
        found.extend(check(state))
    return sorted(found, key=lambda f: -f.score)
