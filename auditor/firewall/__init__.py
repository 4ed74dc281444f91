"""Firewall rules as the kernel holds them: iptables (legacy and nft backends) and nftables.

The shared model lives in :mod:`auditor.firewall.model`; readers for each backend
return :class:`~auditor.firewall.model.Ruleset` objects, and
:mod:`auditor.firewall.trace` walks them all in the kernel's hook order.

Public API::

    read_live() -> FirewallState              every backend present on this host
    read_file(path, ipsets=None) -> Ruleset    iptables-save, nft JSON or nft text (by content)
    trace(rulesets, packet, env=None) -> TraceResult
    local_addresses() -> frozenset[str]        this host's addresses (for addrtype LOCAL)
    interface_addresses() -> ((ifname, addr), ...)  per interface (REDIRECT, MASQUERADE)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from auditor.firewall.model import FirewallError as FirewallError
from auditor.firewall.model import FirewallState, Packet, Ruleset, TraceEnv, TraceResult
from auditor.firewall.trace import trace

if TYPE_CHECKING:
    from auditor.firewall.ipset import IpSets

__all__ = ["FirewallError", "local_addresses", "read_file", "read_ipsets", "read_live", "trace"]

# The readers (grammars, backends) load only when a rule set is read: 0.1 s of every
# command's start-up otherwise (``python -X importtime -m auditor diagnose DIR``).


def read_ipsets(path: str) -> IpSets:
    """``ipset save`` / ``ipset list`` output of a file."""
    from auditor.firewall import readers

    return readers.read_ipsets(path)


def read_file(path: str, ipsets: IpSets | None = None, backend: str = "iptables-nft") -> Ruleset:
    """An iptables-save dump, ``nft -j list ruleset`` JSON or ``nft list ruleset`` text."""
    from auditor.firewall import readers

    return readers.read_file(path, ipsets, backend)


def read_text(text: str, origin: str, ipsets: IpSets | None = None,
              backend: str = "iptables-nft") -> Ruleset:
    """An iptables-save dump, nft JSON or nft text, by content; FirewallError names file:line."""
    from auditor.firewall import readers

    return readers.read_text(text, origin, ipsets, backend)


def read_live(with_nft: bool = True) -> FirewallState:
    """Every backend on this host, read-only; what could not be read is in ``problems``."""
    from auditor.firewall import readers

    return readers.read_live(interface_addresses(), with_nft)


def interface_addresses() -> tuple[tuple[str, str], ...]:
    """(interface, address) pairs of this host/namespace (``ip -j addr``); empty when unknown."""
    exe = shutil.which("ip")
    if exe is None:
        return ()
    try:
        proc = subprocess.run([exe, "-j", "addr", "show"], capture_output=True, text=True,
                              timeout=10, check=False)
        doc = json.loads(proc.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ()
    return tuple((str(link.get("ifname")), str(a["local"])) for link in doc
                 for a in link.get("addr_info", []) if "local" in a)


def local_addresses() -> frozenset[str]:
    """Addresses configured on this host/namespace (``ip -j addr``); empty when unknown."""
    return frozenset(a for _, a in interface_addresses())


def trace_all(rulesets: Sequence[Ruleset], packets: Iterable[Packet],
              env: TraceEnv | None = None) -> Iterable[TraceResult]:
    for p in packets:
        yield trace(rulesets, p, env)
