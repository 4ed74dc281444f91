"""What a netfilter log prefix says: the event.action and firewall of a logged packet.

============================  ========================
prefix                        event.action
============================  ========================
``nf_ct_proto_6: invalid ...``  ``conntrack-invalid`` (conntrack's own log of a packet
                              it marked INVALID, ``nf_conntrack_log_invalid``)
``[UFW LIMIT BLOCK]``          ``firewall-rate-limit``
``[UFW AUDIT...]``             ``firewall-audit``
a vendor's verdict (below)    the verdict it names
contains REJECT               ``firewall-reject``
contains DROP, BLOCK, DENY    ``firewall-drop``
contains ACCEPT, ALLOW        ``firewall-accept``
anything else                 ``firewall-log``
============================  ========================

Vendors' conventions, read exactly (``auditor.firewall`` names the vendor):

* EdgeOS / VyOS / UniFi USG: ``[RULESET-RULE-X]`` with RULE a number or
  ``default`` and X ``A`` (accept), ``D`` (drop) or ``R`` (reject): ``[WAN_IN-default-D]``;
* SuSEfirewall2: ``SFW2-<chain><zone>-<verdict>[-<why>]``, verdict ``ACC``, ``DROP``
  or ``REJECT``: ``SFW2-INext-DROP-DEFLT``, ``SFW2-INext-ACC-TCP``;
* Shorewall (its default LOGFORMAT ``Shorewall:%s:%s:``, chain then disposition):
  ``Shorewall:net-fw:DROP:``; a chain name holding a verdict word does not mislead;
* OpenWrt fw3/fw4: ``reject wan in:``, ``drop lan forward:``, ``DROP(src wan)``,
  ``ACCEPT(dest wan)`` (``auditor.zone``);
* Proxmox VE (``pve-firewall.log``, framed by :mod:`auditor.parsers.syslog_shapes`):
  ``policy DROP:``, ``ACCEPT:``, read by the generic words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

ACTIONS = (
    "firewall-reject",
    "firewall-drop",
    "firewall-accept",
    "firewall-log",
    "firewall-rate-limit",
    "firewall-audit",
    "conntrack-invalid",
)

_FIREWALLD = re.compile(
    r"(?:filter|nat|mangle|raw|security)_(?:IN|OUT|FWD|FWDI|FWDO|FWD_OUT|PRE|POST)_"
    r"(?:policy_)?(.+)_(REJECT|DROP|DENY|ACCEPT|ALLOW|allow|deny|LOG)\b"
)
_FIREWALLD_GLOBAL = ("FINAL_REJECT", "STATE_INVALID_DROP", "INVALID_DROP", "INVALID_REJECT")
_EDGEOS = re.compile(r"\[([A-Za-z0-9_.]{1,28})-(default|\d{1,5})-([ADR])\]")
_SFW2 = re.compile(r"SFW2-(IN|OUT|FWD)([a-z]*)-(ACC|DROP|REJECT|[A-Z]+)\b")
_SHOREWALL = re.compile(r"Shorewall:([^:\s]*):([A-Za-z]+):")
_OPENWRT = re.compile(
    r"(?:(reject|drop|accept) (\S{1,32}) (in|out|forward|invalid): "
    r"|(REJECT|DROP|ACCEPT)\((src|dest) (\S{1,32})\))"
)
_LETTER = {"A": "firewall-accept", "D": "firewall-drop", "R": "firewall-reject"}
_WORD = {"ACC": "firewall-accept", "ACCEPT": "firewall-accept", "DROP": "firewall-drop",
         "REJECT": "firewall-reject"}


def vendor(prefix: str) -> tuple[str, dict[str, Any]] | None:
    """The verdict of a vendor's prefix convention (see the module text); None: no vendor's."""
    if "[" in prefix and (m := _EDGEOS.search(prefix)) is not None:
        return _LETTER[m.group(3)], {"firewall": "edgeos", "ruleset": m.group(1),
                                     "rule": m.group(2)}
    if "SFW2-" in prefix and (m := _SFW2.search(prefix)) is not None:
        extra: dict[str, Any] = {"firewall": "susefirewall2", "chain": m.group(1)}
        if m.group(2):
            extra["zone"] = m.group(2)
        return _WORD.get(m.group(3), "firewall-log"), extra
    if "Shorewall:" in prefix and (m := _SHOREWALL.search(prefix)) is not None:
        return _WORD.get(m.group(2).upper(), "firewall-log"), {
            "firewall": "shorewall", "chain": m.group(1)}
    m = _OPENWRT.search(prefix)
    if m is not None:
        if m.group(1):
            verdict, extra = m.group(1).upper(), {"zone": m.group(2), "direction": m.group(3)}
        else:
            verdict, extra = m.group(4), {"zone": m.group(6), "direction": m.group(5)}
        return _WORD[verdict], {"firewall": "openwrt", **extra}
    return None


def classify(prefix: str) -> tuple[str, dict[str, Any]]:
    """A LOG prefix -> (event.action, extra such as firewall/zone)."""
    upper = prefix.upper()
    extra: dict[str, Any] = {}
    if prefix.startswith("nf_ct_"):  # nf_ct_proto_6: / nf_ct_tcp: written by conntrack itself
        return "conntrack-invalid", extra
    known = vendor(prefix)
    if known is not None:
        return known
    if "[UFW " in upper:
        extra["firewall"] = "ufw"
        if "LIMIT" in upper:
            return "firewall-rate-limit", extra
        if "AUDIT" in upper:
            return "firewall-audit", extra
    else:
        fwd = _FIREWALLD.search(prefix)
        if fwd is not None:
            extra["firewall"] = "firewalld"
            extra["zone"] = fwd.group(1)
        elif any(name in upper for name in _FIREWALLD_GLOBAL):
            extra["firewall"] = "firewalld"
    if "REJECT" in upper:
        return "firewall-reject", extra
    if "DROP" in upper or "BLOCK" in upper or "DENY" in upper:
        return "firewall-drop", extra
    if "ACCEPT" in upper or "ALLOW" in upper:
        return "firewall-accept", extra
    return "firewall-log", extra


@lru_cache(maxsize=1024)
def classify_cached(prefix: str) -> tuple[str, Mapping[str, Any]]:
    """:func:`classify`, remembered: a log has few distinct prefixes. Read-only result."""
    return classify(prefix)


ACTION_TYPES: dict[str, tuple[tuple[str, ...], str | None]] = {  # (event.type, outcome)
    "firewall-reject": (("connection", "denied"), "failure"),
    "firewall-drop": (("connection", "denied"), "failure"),
    "firewall-rate-limit": (("connection", "denied"), "failure"),
    "firewall-accept": (("connection", "allowed"), "success"),
    "firewall-log": (("connection", "info"), None),
    "firewall-audit": (("connection", "info"), None),
    "conntrack-invalid": (("connection", "info"), None),
}


