"""Fact builders: what the host's limits, listeners and processes show, as typed facts.

Each builder reads a :class:`~auditor.limits.snapshot.HostState` and states facts of
:data:`auditor.vocabulary.FACTS` with their values and where they show (e.g.
``listener-queue-full port=9000 backlog=1 queued=1``). A builder never names a
cause, a title, a score or a remedy: the catalog (``rules/*.yaml``) says what a
fact means, and the engine fills the remedy from the fact's values. A limit that is
simply near its value needs no builder: the catalog's ``limit`` evidence reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from auditor.limits import facts_nginx
from auditor.vocabulary import Fact, fact

if TYPE_CHECKING:
    from auditor.limits.snapshot import HostState

NEAR = 0.8  # share of a limit that counts as "near"


def listener_queues(state: HostState) -> list[Fact]:
    """Listeners whose accept queue is at their backlog when ``ss`` ran."""
    somaxconn = state.sysctls.int("net.core.somaxconn")
    out = []
    for x in state.listeners:
        if not x.full:
            continue
        lim = next(
            (li for li in state.limits
             if li.name == "listen backlog" and li.location == x.location),
            None,
        )
        new = max(x.send_q * 4, 1024)
        if somaxconn is not None:
            new = min(new, max(somaxconn, 4096))
        out.append(
            fact(
                "listener-queue-full",
                x.location,
                lim,
                new,
                (x.port,),
                port=x.port,
                address=x.address,
                backlog=x.send_q,
                queued=x.recv_q,
                process=x.processes[0][0] if x.processes else None,
            )
        )
    return out


def syn_backlog(state: HostState) -> list[Fact]:
    """tcp_max_syn_backlog below the largest listen backlog (or 1024) with SYN cookies off."""
    cookies = state.sysctls.int("net.ipv4.tcp_syncookies")
    lim = state.limit("net.ipv4.tcp_max_syn_backlog")
    if lim is None or not isinstance(lim.value, int) or cookies != 0:
        return []
    biggest = max((x.send_q for x in state.listeners), default=0)
    if lim.value >= max(biggest, 1024):
        return []
    return [
        fact(
            "syn-backlog-small",
            lim.location,
            replace(lim, observed=biggest or None),
            max(4096, biggest),
            syn_backlog=lim.value,
            largest_backlog=biggest,
            syncookies=cookies,
        )
    ]


def process_files(state: HostState) -> list[Fact]:
    """Processes holding nearly as many descriptors as their RLIMIT_NOFILE allows."""
    out = []
    for p in state.processes:
        if not p.nofile_soft or p.open_fds is None or p.open_fds < NEAR * p.nofile_soft:
            continue
        scope = f"pid:{p.pid} "
        lim = next(
            (x for x in state.limits if x.name == "open files" and x.scope.startswith(scope)),
            None,
        )
        out.append(
            fact(
                "process-near-nofile",
                p.location,
                lim,
                pid=p.pid,
                process=p.name,
                open=p.open_fds,
                nofile=p.nofile_soft,
            )
        )
    return out


# The facts the builders state (registered in auditor.vocabulary.FACTS).
STATES = frozenset({"listener-queue-full", "syn-backlog-small", "process-near-nofile"}) | (
    facts_nginx.STATES
)
BUILDERS: tuple[Callable[[HostState], list[Fact]], ...] = (
    listener_queues,
    syn_backlog,
    process_files,
    *facts_nginx.BUILDERS,
)


def build_facts(state: HostState) -> tuple[Fact, ...]:
    """Every fact the host state shows, in builder order."""
    found: list[Fact] = []
    for builder in BUILDERS:
        found.extend(builder(state))
    return tuple(found)
