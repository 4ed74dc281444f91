"""Lay out a whole nftables ruleset as ``nft -a list ruleset`` prints it.

:func:`ruleset_text` turns the JSON objects list of ``nft -j list ruleset`` into the
familiar text: tables, then their sets, maps and chains in listing order, base chain
headers with named priorities (``filter + 10``), set declarations and every rule with
its ``# handle N``. Single rules, statements and values are rendered by
:mod:`auditor.firewall.nft_render`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from auditor.firewall import nft_render

# Standard priority names: (name, value, families, hooks or None for any hook).
_IP_FAMS = frozenset({"ip", "ip6", "inet"})
STD_PRIOS: tuple[tuple[str, int, frozenset[str], frozenset[str] | None], ...] = (
    ("raw", -300, _IP_FAMS, None),
    ("mangle", -150, _IP_FAMS, None),
    ("dstnat", -100, _IP_FAMS, frozenset({"prerouting"})),
    ("filter", 0, _IP_FAMS | {"arp", "netdev"}, None),
    ("security", 50, _IP_FAMS, None),
    ("srcnat", 100, _IP_FAMS, frozenset({"postrouting"})),
    ("dstnat", -300, frozenset({"bridge"}), frozenset({"prerouting"})),
    ("filter", -200, frozenset({"bridge"}), None),
    ("out", 100, frozenset({"bridge"}), frozenset({"output"})),
    ("srcnat", 300, frozenset({"bridge"}), frozenset({"postrouting"})),
)


def priority_text(prio: int, family: str, hook: str) -> str:
    """``filter``, ``filter + 10``, ``dstnat - 5`` or the plain number, as nft prints it."""
    for name, base, fams, hooks in STD_PRIOS:
        if family in fams and (hooks is None or hook in hooks) and abs(prio - base) <= 10:
            off = prio - base
            return name if off == 0 else f"{name} {'+' if off > 0 else '-'} {abs(off)}"
    return str(prio)


def chain_header(c: Mapping[str, Any]) -> str | None:
    """The ``type ... hook ... priority ...; policy ...;`` line of a base chain, or None."""
    if "hook" not in c:
        return None
    dev = c.get("dev")
    devtext = ""
    if isinstance(dev, str):
        devtext = f' device "{dev}"'
    elif isinstance(dev, list):
        devtext = " devices = { " + ", ".join(dev) + " }"
    prio = priority_text(int(c.get("prio", 0)), str(c.get("family")), str(c.get("hook")))
    head = f"type {c.get('type')} hook {c.get('hook')}{devtext} priority {prio};"
    if c.get("policy"):
        head += f" policy {c['policy']};"
    return head


def set_lines(s: Mapping[str, Any], is_map: bool, dynamic: bool = False) -> list[str]:
    """The body lines of a named set or map declaration."""
    typ = s.get("type")
    tt = " . ".join(typ) if isinstance(typ, list) else str(typ)
    if is_map:
        tt += f" : {s.get('map')}"
    lines = [f"type {tt}"]
    flags = list(s.get("flags", []))
    if dynamic and "dynamic" not in flags:
        flags.insert(0, "dynamic")
    if "size" in s:
        lines.append(f"size {s['size']}")
    if flags:
        lines.append("flags " + ",".join(flags))
    if "timeout" in s:
        lines.append(f"timeout {nft_render.duration_text(s['timeout'])}")
    if "gc-interval" in s:
        lines.append(f"gc-interval {nft_render.duration_text(s['gc-interval'])}")
    elems = s.get("elem")
    if elems:
        kind = nft_render.set_type_kind(typ)
        lines.append("elements = { " + ", ".join(nft_render.element(e, kind) for e in elems) + " }")
    if s.get("comment"):
        lines.append(f'comment "{s["comment"]}"')
    return lines


def ruleset_text(objects: Iterable[Mapping[str, Any]]) -> str:
    """The whole ruleset as ``nft -a list ruleset`` prints it, from the JSON objects list."""
    objs = [o for o in objects if isinstance(o, Mapping)]
    dynamic = {(a["set"]["family"], a["set"]["table"], str(a["set"].get("set", ""))[1:])
               for a in _set_statements(objs)}
    rules: dict[tuple[Any, Any, Any], list[Mapping[str, Any]]] = {}
    for o in objs:
        if "rule" in o and isinstance(o["rule"], Mapping):
            r = o["rule"]
            rules.setdefault((r.get("family"), r.get("table"), r.get("chain")), []).append(r)
    out: list[str] = []
    for t in (o["table"] for o in objs if "table" in o):
        fam, name = t.get("family"), t.get("name")
        out.append(f"table {fam} {name} {{ # handle {t.get('handle')}")
        blocks: list[list[str]] = []
        for o in objs:
            kind = next(iter(o), "")
            body = o.get(kind)
            if kind not in ("set", "map", "chain") or not isinstance(body, Mapping):
                continue
            if body.get("family") != fam or body.get("table") != name:
                continue
            if kind == "chain":
                block = [f"\tchain {body.get('name')} {{ # handle {body.get('handle')}"]
                head = chain_header(body)
                if head:
                    block.append("\t\t" + head)
                for r in rules.get((fam, name, body.get("name")), []):
                    txt = nft_render.rule_text(r.get("expr", []), str(fam), r.get("comment"))
                    block.append(f"\t\t{txt} # handle {r.get('handle')}")
            else:
                dyn = (fam, name, body.get("name")) in dynamic
                block = [f"\t{kind} {body.get('name')} {{ # handle {body.get('handle')}"]
                block += ["\t\t" + x for x in set_lines(body, kind == "map", dyn)]
            block.append("\t}")
            blocks.append(block)
        for i, block in enumerate(blocks):
            if i:
                out.append("")
            out.extend(block)
        out.append("}")
    return "\n".join(out) + "\n"


def _set_statements(objs: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for o in objs:
        if "rule" in o:
            r = o["rule"]
            for s in r.get("expr", []):
                if isinstance(s, Mapping) and "set" in s and isinstance(s["set"], Mapping):
                    found.append({"set": {"family": r.get("family"), "table": r.get("table"),
                                          "set": s["set"].get("set")}})
    return found
