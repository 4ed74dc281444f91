"""Recognise the chains that UFW, firewalld, Docker, kube-proxy and fail2ban generate.

:func:`owner_of` names the tool that owns a rule, from its chain, its jump target,
its comment and its table; None when nothing points at a known tool.
Works for iptables chain names and for nftables table/chain names alike.
"""

from __future__ import annotations

import re

# (owner, pattern on a chain or table name), first match wins.
_CHAIN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ufw", re.compile(r"^ufw6?-")),
    ("fail2ban", re.compile(r"^f2b-")),
    ("kube-proxy", re.compile(r"^KUBE-|^kube-proxy$")),
    ("docker", re.compile(r"^DOCKER(-|$)")),
    ("firewalld", re.compile(
        r"^(IN|FWDI|FWDO|FWD|PRE|POST|OUT)_[A-Za-z0-9]|_(direct|ZONES|ZONES_SOURCE)$"
        r"|^(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING)_(direct|ZONES|ZONES_SOURCE|POLICIES)"
        r"|^filter_(IN|FWD|OUT)_|^nat_(PRE|POST|OUT)_|^mangle_PRE_|^firewalld$")),
)
_COMMENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("kube-proxy", re.compile(r"kubernetes|^[a-z0-9-]+/[a-z0-9.-]+(:[a-z0-9-]*)?( |$)")),
    ("ufw", re.compile(r"^'?(dapp|sapp)_|^ufw", re.I)),
    ("docker", re.compile(r"docker", re.I)),
    ("fail2ban", re.compile(r"f2b|fail2ban", re.I)),
)


def chain_owner(name: str | None) -> str | None:
    """The tool whose naming scheme ``name`` (a chain or nft table) follows."""
    if not name:
        return None
    for owner, pat in _CHAIN_PATTERNS:
        if pat.search(name):
            return owner
    return None


def owner_of(chain: str, target: str | None = None, comment: str | None = None,
             table: str | None = None) -> str | None:
    """The tool that generated a rule in ``chain`` jumping to ``target``; None if unknown."""
    found = chain_owner(chain) or chain_owner(target) or chain_owner(table)
    if found or not comment:
        return found
    for owner, pat in _COMMENT_PATTERNS:
        if pat.search(comment):
            return owner
    return None
