"""Render nftables JSON (``nft -j list ruleset``) back into the text ``nft list ruleset`` prints.

The text is what users know, so auditor cites rules with it in output and evidence.
:func:`rule_text` gives one rule's line (without the ``# handle N`` annotation);
:mod:`auditor.firewall.nft_layout` lays out the whole ruleset with it (sets, maps,
chains, handles). Anything this module does not know is rendered as compact JSON
inside angle brackets rather than dropped, so an unknown expression stays visible.

The layout follows nft 1.0.x: ``==``/``in`` are implicit, flag masks print as
``value / mask``, marks as ``0x%08x``, interface names quoted, default reject
types omitted, and standard chain priorities named (``filter + 10``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# Meta keys that nft prints without the "meta" keyword.
UNQUALIFIED_META = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
QUOTED_META = frozenset({"iifname", "oifname", "iif", "oif", "ibrname", "obrname",
                         "iifkind", "oifkind", "ibriport", "obriport", "sdifname"})
FLAG_FIELDS = frozenset({("payload", "flags"), ("ct", "state"), ("ct", "status")})
BINOPS = ("&", "|", "^", "<<", ">>")


def _fmt_kind(left: Any) -> Any:
    """How values compared with ``left`` print: "quote", "hex", None, or a list for concat."""
    if isinstance(left, Mapping):
        if "meta" in left:
            key = left["meta"].get("key")
            return "quote" if key in QUOTED_META else "hex" if key == "mark" else None
        if "ct" in left:
            return "hex" if left["ct"].get("key") == "mark" else None
        if "concat" in left:
            return [_fmt_kind(x) for x in left["concat"]]
        for op in BINOPS:
            if op in left:
                return _fmt_kind(left[op][0])
    return None


def set_type_kind(typ: Any) -> Any:
    """The value format for a named set's declared type (``ifname`` quoted, ``mark`` hex)."""
    if isinstance(typ, list):
        return [set_type_kind(t) for t in typ]
    return {"ifname": "quote", "mark": "hex"}.get(str(typ))


def value(v: Any, kind: Any = None) -> str:
    """One right-hand value: constant, set, range, prefix, concat, verdict or expression."""
    if isinstance(v, bool):
        return "exists" if v else "missing"
    if isinstance(v, int):
        return f"0x{v:08x}" if kind == "hex" else str(v)
    if isinstance(v, str):
        if kind == "quote" and not v.startswith("@"):
            return '"' + v + '"'
        return v
    if isinstance(v, list):  # flag list: "syn,ack"
        return ",".join(value(x, kind) for x in v)
    if isinstance(v, Mapping):
        if "set" in v and isinstance(v["set"], list):
            return "{ " + ", ".join(element(x, kind) for x in v["set"]) + " }"
        if "range" in v:
            lo, hi = v["range"]
            return f"{value(lo, kind)}-{value(hi, kind)}"
        if "prefix" in v:
            return f"{value(v['prefix']['addr'], kind)}/{v['prefix']['len']}"
        if "concat" in v:
            kinds = kind if isinstance(kind, list) else [kind] * len(v["concat"])
            kinds = list(kinds) + [None] * (len(v["concat"]) - len(kinds))
            return " . ".join(value(x, k) for x, k in zip(v["concat"], kinds, strict=False))
        if "elem" in v:
            el = v["elem"]
            out = value(el.get("val"), kind)
            if "timeout" in el:
                out += f" timeout {duration_text(el['timeout'])}"
            if "expires" in el:
                out += f" expires {duration_text(el['expires'])}"
            if "counter" in el:
                c = el["counter"]
                out += f" counter packets {c.get('packets', 0)} bytes {c.get('bytes', 0)}"
            if "comment" in el:
                out += f' comment "{el["comment"]}"'
            return out
        verdict = verdict_text(v)
        if verdict is not None:
            return verdict
        return expr(v)
    return str(v)


def element(x: Any, kind: Any = None) -> str:
    """One set element, or ``key : value`` for a map element (a two-item list in JSON)."""
    if isinstance(x, list) and len(x) == 2:
        return f"{value(x[0], kind)} : {value(x[1])}"
    return value(x, kind)


def verdict_text(v: Mapping[str, Any]) -> str | None:
    """``accept``, ``jump web``... for a verdict object, None when it is not one."""
    if len(v) != 1:
        return None
    key, arg = next(iter(v.items()))
    if key in ("accept", "drop", "continue", "return", "queue") and arg is None:
        return str(key)
    if key in ("jump", "goto") and isinstance(arg, Mapping):
        return f"{key} {arg.get('target')}"
    return None


def duration_text(seconds: Any) -> str:
    try:
        s = int(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
    if s or not parts:
        parts.append(f"{s}s")
    return "".join(parts)


def expr(e: Any) -> str:
    """A left-hand expression: payload, meta, ct, fib, binop, concat, numgen, ..."""
    if not isinstance(e, Mapping):
        return value(e)
    if "payload" in e:
        p = e["payload"]
        if "protocol" in p:
            return f"{p['protocol']} {p['field']}"
        return f"@{p.get('base')},{p.get('offset')},{p.get('len')}"
    if "meta" in e:
        key = e["meta"].get("key")
        return str(key) if key in UNQUALIFIED_META else f"meta {key}"
    if "ct" in e:
        c = e["ct"]
        words = ["ct", c.get("dir"), c.get("family"), c.get("key")]
        return " ".join(str(w) for w in words if w)
    if "fib" in e:
        f = e["fib"]
        flags = f.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        result = {"check": "check"}.get(f.get("result"), f.get("result"))
        return f"fib {' . '.join(flags)} {result}"
    if "concat" in e:
        return " . ".join(expr(x) for x in e["concat"])
    for op in BINOPS:
        if op in e:
            a, b = e[op]
            kind = _fmt_kind(a)
            rhs = value(b, kind)
            if isinstance(b, list) or (isinstance(b, Mapping) and "set" not in b):
                rhs = f"({rhs.replace(',', ' | ')})" if isinstance(b, list) else rhs
            return f"{expr(a)} {op} {rhs}"
    if "numgen" in e:
        n = e["numgen"]
        out = f"numgen {n.get('mode')} mod {n.get('mod')}"
        return out + (f" offset {n['offset']}" if n.get("offset") else "")
    if "tcp option" in e:
        t = e["tcp option"]
        return f"tcp option {t.get('name')}" + (f" {t['field']}" if t.get("field") else "")
    if "exthdr" in e:
        x = e["exthdr"]
        return f"exthdr {x.get('name')}" + (f" {x['field']}" if x.get("field") else "")
    if "rt" in e:
        return f"rt {e['rt'].get('key')}"
    if "socket" in e:
        return f"socket {e['socket'].get('key')}"
    if "osf" in e:
        return f"osf {e['osf'].get('key')}"
    if "map" in e:
        m = e["map"]
        return f"{expr(m['key'])} map {value(m['data'])}"
    if "symhash" in e or "jhash" in e:
        k = "symhash" if "symhash" in e else "jhash"
        h = e[k]
        inner = f" {expr(h['expr'])}" if "expr" in h else ""
        return f"{k}{inner} mod {h.get('mod')}" + (f" seed 0x{h['seed']:x}" if "seed" in h else "")
    if isinstance(e.get("set"), list) or "range" in e or "prefix" in e or "elem" in e:
        return value(e)  # what value() renders itself (a "set" that is no list would loop)
    return "<" + json.dumps(e, separators=(",", ":")) + ">"


def _is_flag_expr(left: Any) -> bool:
    if not isinstance(left, Mapping):
        return False
    if "payload" in left:
        return bool(left["payload"].get("field") == "flags")
    return "ct" in left and left["ct"].get("key") in ("state", "status")


def match_text(m: Mapping[str, Any]) -> str:
    """``tcp dport != { 22, 80 }``, ``tcp flags syn / syn,ack``, ``ct state new``..."""
    op, left, right = m.get("op", "=="), m.get("left"), m.get("right")
    if isinstance(left, Mapping) and "&" in left and _is_flag_expr(left["&"][0]):
        base, mask = left["&"]
        rhs = f"{value(right)} / {value(mask)}"
        return f"{expr(base)} {'' if op in ('==', 'in') else op + ' '}{rhs}"
    kind = _fmt_kind(left)
    rhs = value(right, kind)
    explicit = isinstance(left, Mapping) and any(b in left for b in BINOPS)
    if op in ("==", "in") and not explicit:
        return f"{expr(left)} {rhs}"
    return f"{expr(left)} {op} {rhs}"


def _limit_text(lim: Mapping[str, Any]) -> str:
    over = "over " if lim.get("inv") else ""
    unit = lim.get("rate_unit", "packets")
    per = lim.get("per", "second")
    burst = lim.get("burst", 5 if unit == "packets" else 0)
    if unit == "packets":
        out = f"limit rate {over}{lim.get('rate')}/{per}"
        return out + (f" burst {burst} packets" if burst not in (5, None) else "")
    out = f"limit rate {over}{lim.get('rate')} {unit}/{per}"
    if burst:
        out += f" burst {burst} {lim.get('burst_unit', 'bytes')}"
    return out


def _reject_text(r: Mapping[str, Any] | None, family: str) -> str:
    if not r:
        return "reject"
    typ, code = r.get("type"), r.get("expr")
    if typ == "tcp reset":
        return "reject with tcp reset"
    default = {"ip": "icmp", "ip6": "icmpv6"}.get(family, "icmpx")
    if typ == default and code in (None, "port-unreachable"):
        return "reject"
    return f"reject with {typ} {code}" if code else f"reject with {typ}"


def _nat_text(key: str, n: Mapping[str, Any] | None) -> str:
    if not n:
        return key
    out = key
    if n.get("family"):
        out += f" {n['family']}"
    addr, port = n.get("addr"), n.get("port")
    if addr is not None or port is not None:
        a = value(addr) if isinstance(addr, str) else expr(addr) if addr is not None else ""
        if port is not None:
            p = value(port) if not isinstance(port, Mapping) else expr(port)
            a = f"[{a}]" if ":" in a and n.get("family") == "ip6" else a
            a = f"{a}:{p}"
        out += f" to {a}"
    flags = n.get("flags")
    if flags:
        out += " " + (",".join(flags) if isinstance(flags, list) else str(flags))
    return out


def stmt_text(s: Any, family: str = "inet") -> str:
    """One statement of a rule's ``expr`` list, as nft prints it."""
    if not isinstance(s, Mapping) or not s:
        return "<" + json.dumps(s) + ">"
    key, arg = next(iter(s.items()))
    if key == "match":
        return match_text(arg)
    v = verdict_text(s)
    if v is not None:
        return v
    if key == "counter":
        if isinstance(arg, Mapping):
            return f"counter packets {arg.get('packets', 0)} bytes {arg.get('bytes', 0)}"
        return f"counter name {value(arg)}" if arg else "counter"
    if key == "reject":
        return _reject_text(arg, family)
    if key == "log":
        a = arg or {}
        out = "log"
        if "prefix" in a:
            out += f' prefix "{a["prefix"]}"'
        for opt in ("group", "snaplen", "queue-threshold", "level"):
            if opt in a:
                out += f" {opt} {a[opt]}"
        if "flags" in a:
            fl = a["flags"]
            out += " flags " + (fl if isinstance(fl, str) else ",".join(fl))
        return out
    if key == "limit":
        return _limit_text(arg)
    if key == "ct count":
        return f"ct count {'over ' if arg.get('inv') else ''}{arg.get('val')}"
    if key == "quota":
        out = f"quota {'over ' if arg.get('inv') else ''}{arg.get('val')} {arg.get('val_unit')}"
        if arg.get("used"):
            out += f" used {arg['used']} {arg.get('used_unit', 'bytes')}"
        return out
    if key == "set":
        inner = expr(arg.get("elem"))
        stmts = " ".join(stmt_text(x, family) for x in arg.get("stmt", []))
        return f"{arg.get('op')} {arg.get('set')} {{ {inner}{' ' + stmts if stmts else ''} }}"
    if key == "mangle":
        k = arg.get("key")
        val = arg.get("value")
        rhs = value(val, _fmt_kind(k)) if not isinstance(val, Mapping) else expr(val)
        return f"{expr(k)} set {rhs}"
    if key in ("dnat", "snat", "masquerade", "redirect"):
        return _nat_text(key, arg)
    if key == "notrack":
        return "notrack"
    if key == "vmap":
        return f"{expr(arg['key'])} vmap {value(arg['data'])}"
    if key == "meter" and isinstance(arg, Mapping):
        size = f" size {arg['size']}" if arg.get("size") is not None else ""
        return (f"meter {arg.get('name')}{size} {{ {expr(arg.get('key'))} "
                f"{stmt_text(arg.get('stmt'), family)} }}")
    if key == "unreadable":  # a rule the text reader could not read: its line as it was
        return str(arg)
    if key == "xt":
        return f'xt {arg.get("type")} "{arg.get("name")}"'
    if key == "queue" and isinstance(arg, Mapping):
        return "queue" + (f" to {value(arg['num'])}" if "num" in arg else "")
    if key in ("flow",):
        return f"flow {arg.get('op')} {arg.get('flowtable')}"
    return "<" + json.dumps(s, separators=(",", ":")) + ">"


def rule_text(exprs: Sequence[Any], family: str, comment: str | None = None) -> str:
    """A rule's line as ``nft list ruleset`` prints it (counters included, handle not)."""
    text = " ".join(stmt_text(s, family) for s in exprs)
    if comment:
        text += f' comment "{comment}"'
    return text
