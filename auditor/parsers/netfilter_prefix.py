"""What a netfilter log prefix says: the event.action and firewall of a logged packet.

============================  ========================
prefix                        event.action
============================  ========================
``nf_ct_proto_6: invalid ...``  ``conntrack-invalid`` (conntrack's own log of a packet
                              it marked INVALID, ``nf_conntrack_log_invalid``)
``[UFW LIMIT BLOCK]``          ``firewall-rate-limit``
``[UFW AUDIT...]``             ``firewall-audit``
contains REJECT               ``firewall-reject``
contains DROP, BLOCK, DENY    ``firewall-drop``
contains ACCEPT, ALLOW        ``firewall-accept``
anything else                 ``firewall-log``
============================  ========================
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
def classify(prefix: str) -> tuple[str, dict[str, Any]]:
    """A LOG prefix -> (event.action, extra such as firewall/zone)."""
    upper = prefix.upper()
    extra: dict[str, Any] = {}
    if prefix.startswith("nf_ct_"):  # nf_ct_proto_6: / nf_ct_tcp: written by conntrack itself
        return "conntrack-invalid", extra
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


