"""Index an nftables chain by what its rules match on, so a packet meets only its candidates.

A rule whose leading matches require an exact destination address, source address or
destination port (a constant, or a set of exact values) is filed under those values;
every other rule is *wild* and tried for every packet. :meth:`IndexedChain.candidates`
returns the positions of the rules that could match a packet, in rule order.

Skipping a rule must not change what a full scan reports, so a key is taken only from
a match that every earlier statement of the rule reaches without side effects: the
matches before it must be ones that never say "not evaluated" (:func:`safe_left`:
address, protocol, mark, ct and fib reads), and nothing else (no conditions, no mark
changes) may come first. A packet without a destination port meets every port-keyed
rule (a port match on it is "not evaluated", not a miss), and so does a non-port packet
for rules keyed through ``th dport``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INDEX_MIN = 16  # chains at least this long are indexed
MAX_KEYS = 4096  # a set with more exact values than this leaves its rule wild
PORT_PROTOS = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})
PORT_PROTO_NUMBERS = frozenset({6, 17, 33, 132, 136})
_FIELD_ORDER = {"daddr": 0, "saddr": 1, "dport": 2}
_SAFE_META = frozenset({"l4proto", "nfproto", "protocol", "mark", "length", "pkttype"})

# (field, exact values, keyed through ``th``)
Key = tuple[str, frozenset[Any], bool]


def safe_left(e: Any) -> bool:
    """True when reading ``e`` from any packet gives a value or "absent", never Unknown."""
    if not isinstance(e, Mapping):
        return False
    if "payload" in e:
        p = e["payload"]
        return p.get("protocol") in ("ip", "ip6") or (
            p.get("protocol") == "tcp" and p.get("field") == "flags")
    if "meta" in e:
        return e["meta"].get("key") in _SAFE_META
    if "ct" in e or "fib" in e:
        return True
    if "&" in e:
        return safe_left(e["&"][0])
    if "concat" in e:
        return all(safe_left(x) for x in e["concat"])
    return False


def key_field(left: Any) -> tuple[str, bool] | None:
    """("daddr"|"saddr"|"dport", through th) when ``left`` reads an indexable field."""
    if not isinstance(left, Mapping) or "payload" not in left:
        return None
    p = left["payload"]
    proto, fld = p.get("protocol"), p.get("field")
    if proto in ("ip", "ip6") and fld in ("saddr", "daddr"):
        return str(fld), False
    if fld == "dport" and (proto in PORT_PROTOS or proto == "th"):
        return "dport", proto == "th"
    return None


def best_key(keys: list[Key]) -> Key | None:
    """The most selective key: fewest values, then addresses before ports."""
    if not keys:
        return None
    return min(keys, key=lambda k: (len(k[1]), _FIELD_ORDER[k[0]]))


class IndexedChain:
    """Rule positions of one chain by exact daddr, saddr and dport, plus the wild ones."""

    __slots__ = ("all", "any_dport", "by_daddr", "by_dport", "by_saddr", "indexed", "th_dport",
                 "wild")

    def __init__(self, keys: list[Key | None]) -> None:
        self.all = list(range(len(keys)))
        self.indexed = len(keys) >= INDEX_MIN
        self.wild: list[int] = []
        self.by_daddr: dict[Any, list[int]] = {}
        self.by_saddr: dict[Any, list[int]] = {}
        self.by_dport: dict[Any, list[int]] = {}
        self.any_dport: list[int] = []  # every port-keyed rule (packet without a dport)
        self.th_dport: list[int] = []  # port-keyed through th (a non-port packet)
        if not self.indexed:
            return
        buckets = {"daddr": self.by_daddr, "saddr": self.by_saddr, "dport": self.by_dport}
        for i, k in enumerate(keys):
            if k is None:
                self.wild.append(i)
                continue
            fld, values, th = k
            for v in values:
                buckets[fld].setdefault(v, []).append(i)
            if fld == "dport":
                self.any_dport.append(i)
                if th:
                    self.th_dport.append(i)

    def candidates(self, daddr: Any, saddr: Any, dport: int | None, proto: int) -> list[int]:
        """Positions of the rules that may match, in order (shared lists: do not change)."""
        if not self.indexed:
            return self.all
        d = self.by_daddr.get(daddr)
        s = self.by_saddr.get(saddr)
        if dport is not None:
            p = self.by_dport.get(dport)
        else:
            p = self.any_dport if proto in PORT_PROTO_NUMBERS else self.th_dport
        if not d and not s and not p:
            return self.wild
        out = self.wild.copy()
        for extra in (d, s, p):
            if extra:
                out += extra
        out.sort()
        return out
