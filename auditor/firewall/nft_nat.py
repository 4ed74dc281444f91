"""Compile nftables NAT statements (dnat, snat, masquerade, redirect) for the evaluator.

:func:`compile_nat` turns one statement's JSON into a function of the packet view that
returns where the connection goes (:class:`~auditor.firewall.nat.NatTo`), ``None`` when
a map lookup finds no element (the kernel then ends the rule without a match), or
:data:`SKIP` when the statement is for the other IP family of an ``inet`` table (the
kernel does nothing and the rule goes on). Addresses and ports may be constants,
ranges, prefixes, or map lookups (``dnat ip to ip daddr . tcp dport map { ... }``,
anonymous or named); ``flags netmap`` makes a prefix a NETMAP. The rewrite itself is
:func:`auditor.firewall.nat.translate`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from auditor.firewall import nft_render
from auditor.firewall.nat import NatTo
from auditor.firewall.nft_values import (
    MISSING,
    PV,
    Unknown,
    Unsupported,
    ValueMap,
    build_map,
    getter,
)

SKIP: Any = object()  # the statement does not apply to this packet's family
NatFn = Callable[[PV], Any]  # -> NatTo | None | SKIP
Named = Callable[[str, Any], "ValueMap | str"]  # "@name", key type -> lookup or why dynamic
FAMILIES = {"ip": 4, "ip6": 6}


def compile_nat(key: str, arg: Any, named: Named) -> tuple[str, Any]:
    """("nat", (kind, fn)) for the evaluator, or ("cond", text) when a map is dynamic."""
    arg = arg if isinstance(arg, Mapping) else {}
    flags = arg.get("flags", [])
    flags = [flags] if isinstance(flags, str) else list(flags)
    kind = "netmap" if "netmap" in flags else key
    fam = FAMILIES.get(str(arg.get("family")))
    parts: list[tuple[str, Any]] = []  # ("addr"|"port", constant value or lookup)
    for what in ("addr", "port"):
        v = arg.get(what)
        if v is None:
            continue
        if isinstance(v, Mapping) and "map" in v:
            m = v["map"]
            ftype, get = getter(m["key"])
            data = m["data"]
            vm = named(data, ftype) if isinstance(data, str) else \
                build_map(data["set"], ftype, is_map=True)
            if isinstance(vm, str):
                return ("cond", f"{nft_render.expr(m['key'])} in the {vm}")
            parts.append((what, (get, vm)))
        else:
            parts.append((what, _const(what, v)))

    def fn(pv: PV) -> Any:
        if fam is not None and pv.fam != fam:
            return SKIP
        to = NatTo()
        for what, part in parts:
            if isinstance(part, NatTo):
                to = _merge(to, part)
                continue
            get, vm = part
            key = get(pv)
            data = None if key is MISSING else vm.lookup(key)
            if data is None:
                return None
            try:
                to = _merge(to, _data(what, data))
            except (Unsupported, ValueError, TypeError) as exc:
                raise Unknown(f"map data {data!r}: {exc}") from None
        return to

    return ("nat", (kind, fn))


def _merge(a: NatTo, b: NatTo) -> NatTo:
    return NatTo(b.addr or a.addr, b.addr_hi or a.addr_hi,
                 b.port if b.port is not None else a.port,
                 b.port_hi if b.port_hi is not None else a.port_hi)


def _const(what: str, v: Any) -> NatTo:
    return _addr(v) if what == "addr" else _port(v)


def _data(what: str, v: Any) -> NatTo:
    """A map element's data: an address, a port, or ``address . port``."""
    if isinstance(v, Mapping) and "concat" in v:
        a, p = v["concat"]
        return _merge(_addr(a), _port(p))
    return _const(what, v)


def _addr(v: Any) -> NatTo:
    if isinstance(v, Mapping):
        if "range" in v:
            lo, hi = v["range"]
            return NatTo(str(lo), str(hi))
        if "prefix" in v:
            return NatTo(f"{v['prefix']['addr']}/{v['prefix']['len']}")
        raise Unsupported(f"NAT address {v!r} not evaluated")
    return NatTo(str(v))


def _port(v: Any) -> NatTo:
    if isinstance(v, Mapping):
        if "range" in v:
            lo, hi = v["range"]
            return NatTo(None, None, int(lo), int(hi))
        raise Unsupported(f"NAT port {v!r} not evaluated")
    return NatTo(None, None, int(v))
