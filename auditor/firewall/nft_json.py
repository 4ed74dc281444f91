"""Read nftables rulesets from ``nft -j list ruleset`` JSON, live or saved.

:func:`load_json` turns the JSON text into an :class:`NftRuleset` (tables of every
family, base chains with hook/priority/policy, rules with handles, counters,
comments and expressions, named sets and maps) through :func:`load_objects`, which the
text reader (:mod:`auditor.firewall.nft_text`) shares; :func:`read_live` runs
``nft -j list ruleset``, which only lists and never changes anything.

Each rule keeps its raw expression list, its text as ``nft list ruleset`` prints it
(:mod:`auditor.firewall.nft_render`; the whole ruleset: :mod:`auditor.firewall.nft_layout`)
and its location (file:line of the JSON object).
Tables that iptables-nft manages (``xt`` compat expressions, or the iptables table and
chain names) are recognised and left to the iptables path: they are listed in
``NftRuleset.iptables_tables`` and ``notes`` and never traced here.
:class:`NftRuleset` implements the :class:`auditor.firewall.model.Ruleset` protocol;
its parts are the types of :mod:`auditor.firewall.nft_objects`, and evaluation lives in
:mod:`auditor.firewall.nft_eval` (which knows only those types).
"""

from __future__ import annotations

import bisect
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from auditor.firewall import nft_eval, nft_layout, nft_render
from auditor.firewall.jumps import Jump, find_loop, loop_message
from auditor.firewall.model import ChainOutcome, HookChain, Packet, Policy, RuleRef, TraceEnv
from auditor.firewall.nft_objects import BACKEND, NftChain, NftError, NftRule, NftSet, NftTable
from auditor.models import Location, ParseIssue

__all__ = [  # the parts' types live in nft_objects and are published here too
    "BACKEND", "NftChain", "NftError", "NftRule", "NftRuleset", "NftSet", "NftTable",
    "load_json", "load_objects", "read_live",
]
FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
IPTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security", "broute"})
IPTABLES_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING",
                             "BROUTING"})
LIVE_COMMAND = ("nft", "-j", "list", "ruleset")


@dataclass
class NftRuleset:
    """An nftables ruleset; implements :class:`auditor.firewall.model.Ruleset`."""

    origin: str
    backend: str = BACKEND
    issues: list[ParseIssue] = field(default_factory=list)
    tables: dict[tuple[str, str], NftTable] = field(default_factory=dict)
    chains: dict[tuple[str, str, str], NftChain] = field(default_factory=dict)
    sets: dict[tuple[str, str, str], NftSet] = field(default_factory=dict)
    objects: list[Mapping[str, Any]] = field(default_factory=list)  # the raw JSON list
    version: str | None = None
    notes: list[str] = field(default_factory=list)
    _compiled: nft_eval.Compiled | None = None  # built on the first trace; frozen after
    _hooks: dict[tuple[int, str], list[HookChain]] = field(default_factory=dict)

    @property
    def iptables_tables(self) -> list[NftTable]:
        """Tables left to the iptables path (managed by iptables-nft)."""
        return [t for t in self.tables.values() if t.iptables]

    def _iptables(self, c: NftChain) -> bool:
        t = self.tables.get((c.family, c.table))
        return t is not None and t.iptables is not None

    def rules(self) -> Iterable[RuleRef]:
        for c in self.chains.values():
            if not self._iptables(c):
                yield from (r.ref for r in c.rules)

    def policies(self) -> Iterable[Policy]:
        for c in self.chains.values():
            if c.is_base and c.policy and not self._iptables(c):
                yield Policy(BACKEND, c.family, c.table, c.name, c.policy)

    def hook_chains(self, family: int, hook: str) -> list[HookChain]:
        if self._compiled is not None and (family, hook) in self._hooks:
            return list(self._hooks[(family, hook)])
        fams = {"ip", "inet"} if family == 4 else {"ip6", "inet"}
        out = [HookChain(c.priority or 0, c.family, c.table, c.name, hook, c.type or "filter")
               for c in self.chains.values()
               if c.hook == hook and c.family in fams
               and not self._iptables(c)]
        out.sort(key=lambda h: h.priority)
        if self._compiled is not None:  # frozen from the first trace on, like the rules
            self._hooks[(family, hook)] = out
        return list(out)

    def text(self) -> str:
        """The ruleset as ``nft -a list ruleset`` prints it."""
        return nft_layout.ruleset_text(self.objects)

    def run_chain(self, chain: HookChain, packet: Packet, env: TraceEnv) -> ChainOutcome:
        if self._compiled is None:
            self._compiled = nft_eval.compile_ruleset(self.chains, self.sets)
        return self._compiled.run(chain, packet, env)


class _Lines:
    """Byte offset to 1-based line number, for citing JSON objects as file:line."""

    def __init__(self, text: str) -> None:
        self.starts = [m.end() for m in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) + 1


def _offsets(text: str, count: int) -> list[int]:
    """Start offsets of the elements of the top-level ``nftables`` array (best effort)."""
    m = re.search(r'"nftables"\s*:\s*\[', text)
    if not m:
        return []
    dec = json.JSONDecoder()
    pos, out = m.end(), list[int]()
    ws = re.compile(r"[\s,]*")
    try:
        while len(out) < count:
            pos = ws.match(text, pos).end()  # type: ignore[union-attr]
            if text.startswith("]", pos):
                break
            out.append(pos)
            _, pos = dec.raw_decode(text, pos)
    except ValueError:
        return []
    return out


def _json_error(origin: str, exc: json.JSONDecodeError) -> NftError:
    return NftError(f"{origin}:{exc.lineno}: not valid nft JSON ({exc.msg}, column {exc.colno})")


def load_json(text: str, origin: str) -> NftRuleset:
    """Parse ``nft -j list ruleset`` output; NftError when it is not such a document.

    Objects that are malformed are reported in ``issues`` (with file:line) and skipped.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _json_error(origin, exc) from None
    except (ValueError, RecursionError) as exc:
        raise NftError(f"{origin}: not valid nft JSON ({exc})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("nftables"), list):
        raise NftError(f"{origin}: not an nft JSON ruleset (expected {{\"nftables\": [...]}})")
    objs: list[Any] = doc["nftables"]
    lines = _Lines(text)
    offs = _offsets(text, len(objs))

    def loc(i: int) -> Location:
        return Location(origin, lines.line(offs[i]) if i < len(offs) else 0)

    return load_objects(objs, origin, loc)


def load_objects(objs: list[Any], origin: str, loc: Callable[[int], Location],
                 parser: str = "nft-json") -> NftRuleset:
    """The ruleset of a list of nft JSON objects (``loc(i)``: where object ``i`` was read).

    Shared by the JSON reader and the text reader (:mod:`auditor.firewall.nft_text`,
    which builds the same objects from ``nft list ruleset`` text), so both give one model.
    """
    rs = NftRuleset(origin=origin)
    chain_rules: dict[tuple[str, str, str], list[NftRule]] = {}
    chain_objs: list[tuple[int, NftChain]] = []
    for i, obj in enumerate(objs):
        try:
            _load_object(rs, i, obj, loc, chain_rules, chain_objs)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            rs.issues.append(ParseIssue(loc(i), parser, f"malformed object: {exc!r}",
                                        json.dumps(obj)[:200]))
    for i, c in chain_objs:
        key = (c.family, c.table, c.name)
        rs.chains[key] = replace(c, rules=tuple(chain_rules.pop(key, [])), location=loc(i))
    for key, orphans in chain_rules.items():
        for r in orphans:
            rs.issues.append(ParseIssue(r.ref.location or Location(origin), parser,
                                        f"rule in unknown chain {' '.join(key)}", r.text))
    _refuse_loops(rs)
    _mark_dynamic_sets(rs)
    _mark_iptables_tables(rs)
    return rs


def _chain(c: Mapping[str, Any]) -> NftChain:
    """A chain object's fields, checked (the rules and location are added later)."""
    fam, table, name = (_word(c, k) for k in ("family", "table", "name"))
    if fam not in FAMILIES:
        raise ValueError(f"unknown family {fam!r}")
    prio = c.get("prio")
    if prio is not None and (not isinstance(prio, int) or isinstance(prio, bool)):
        raise ValueError(f"chain {name}: prio must be an integer, not {prio!r}"[:200])
    hook, typ, pol = c.get("hook"), c.get("type"), c.get("policy")
    for what, val in (("hook", hook), ("type", typ), ("policy", pol)):
        if val is not None and not isinstance(val, str):
            raise ValueError(f"chain {name}: {what} must be a word, not {val!r}"[:200])
    if pol is not None and pol not in ("accept", "drop"):
        raise ValueError(f"chain {name}: policy must be accept or drop, not {pol!r}"[:200])
    return NftChain(fam, table, name, c.get("handle"), typ, hook, prio, pol,
                    c.get("dev") if isinstance(c.get("dev"), str) else None)


def _word(body: Mapping[str, Any], key: str) -> str:
    if key not in body:
        raise ValueError(f"no {key!r}")
    val = body[key]
    if not isinstance(val, str) or not val:
        raise ValueError(f"{key} must be a name, not {val!r}"[:200])
    return val


def _refuse_loops(rs: NftRuleset) -> None:
    """NftError (file:line) when jumps/gotos, verdict maps included, form a loop."""
    tables: dict[tuple[str, str], dict[str, list[Jump]]] = {}
    for c in rs.chains.values():
        edges = tables.setdefault((c.family, c.table), {})
        out = edges.setdefault(c.name, [])
        for r in c.rules:
            maps = [rs.sets.get((c.family, c.table, ref)) for ref in _jumps(r.expr, out, r)]
            for st in maps:
                if st is not None and st.map_type == "verdict":
                    _jumps(st.elements, out, r)
    for (_, table), edges in tables.items():
        found = find_loop(edges)
        if found is not None:
            chains, where = found
            raise NftError(f"{where or rs.origin}: {loop_message(chains, table)}")


def _jumps(tree: Any, out: list[Jump], rule: NftRule) -> list[str]:
    """Add the jump/goto targets found anywhere in ``tree``; return the @map names used."""
    refs: list[str] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, Mapping):
            for key, val in node.items():
                if key in ("jump", "goto") and isinstance(val, Mapping):
                    out.append(Jump(str(val.get("target")), rule.ref.location))
                else:
                    todo.append(val)
        elif isinstance(node, list | tuple):
            todo.extend(node)
        elif isinstance(node, str) and node.startswith("@"):
            refs.append(node[1:])
    return refs


def _load_object(rs: NftRuleset, i: int, obj: Any, loc: Any,
                 chain_rules: dict[tuple[str, str, str], list[NftRule]],
                 chain_objs: list[tuple[int, NftChain]]) -> None:
    if not isinstance(obj, Mapping) or len(obj) != 1:
        raise ValueError("expected an object with one key")
    kind, body = next(iter(obj.items()))
    if not isinstance(body, Mapping):
        raise TypeError(f"{kind}: expected an object")
    rs.objects.append(obj)
    if kind == "metainfo":
        rs.version = body.get("version")
    elif kind == "table":
        fam = str(body["family"])
        if fam not in FAMILIES:
            raise ValueError(f"unknown family {fam!r}")
        rs.tables[(fam, str(body["name"]))] = NftTable(
            fam, str(body["name"]), body.get("handle"), tuple(body.get("flags", ())))
    elif kind == "chain":
        chain_objs.append((i, _chain(body)))
    elif kind in ("set", "map"):
        typ = body["type"]
        key = (str(body["family"]), str(body["table"]), str(body["name"]))
        rs.sets[key] = NftSet(
            key[0], key[1], key[2], tuple(typ) if isinstance(typ, list) else (str(typ),),
            body.get("handle"), tuple(body.get("flags", ())),
            str(body["map"]) if kind == "map" else None, tuple(body.get("elem", ())),
            location=loc(i))
    elif kind == "rule":
        key = (str(body["family"]), str(body["table"]), str(body["chain"]))
        exprs = body.get("expr", [])
        if not isinstance(exprs, list):
            raise TypeError("rule expr must be a list")
        lst = chain_rules.setdefault(key, [])
        text = nft_render.rule_text(exprs, key[0], body.get("comment"))
        packets = bytes_ = None
        target = reject_with = None
        for s in exprs:
            if isinstance(s, Mapping) and isinstance(s.get("counter"), Mapping):
                packets, bytes_ = s["counter"].get("packets"), s["counter"].get("bytes")
            t, rw = _target(s, key[0])
            if t:
                target, reject_with = t, rw
        ref = RuleRef(BACKEND, key[0], key[1], key[2], text, handle=body.get("handle"),
                      packets=packets, bytes=bytes_, comment=body.get("comment"),
                      location=loc(i), target=target, reject_with=reject_with,
                      dports=_dports(exprs, lambda name: rs.sets.get((key[0], key[1], name))))
        lst.append(NftRule(key[0], key[1], key[2], body.get("handle"), len(lst) + 1,
                           tuple(exprs), text, ref, body.get("comment")))
    # other objects (counter, quota, limit, flowtable, ct helper...) are kept in `objects`


MAX_DPORTS = 32
_PORT_PROTOS = frozenset({"tcp", "udp", "th", "sctp", "dccp", "udplite"})


def _dports(exprs: list[Any], named: Callable[[str], NftSet | None]) -> tuple[int, ...]:
    """The destination ports a rule's ``dport`` match requires: a constant, the members
    of an anonymous or a named set (read before the rule); () when none or too many."""
    for s in exprs:
        m = s.get("match") if isinstance(s, Mapping) else None
        if not isinstance(m, Mapping) or m.get("op", "==") not in ("==", "in"):
            continue
        left = m.get("left")
        p = left.get("payload") if isinstance(left, Mapping) else None
        if not isinstance(p, Mapping) or p.get("field") != "dport" \
                or p.get("protocol") not in _PORT_PROTOS:
            continue
        right = m.get("right")
        elems: Any = [right]
        if isinstance(right, Mapping) and isinstance(right.get("set"), list):
            elems = right["set"]
        elif isinstance(right, str) and right.startswith("@"):
            st = named(right[1:])
            elems = list(st.elements) if st is not None and st.map_type is None else []
        ports = sorted({e for e in elems if isinstance(e, int) and not isinstance(e, bool)
                        and 0 < e < 65536})
        return tuple(ports) if 0 < len(ports) <= MAX_DPORTS else ()
    return ()


def _target(s: Any, family: str) -> tuple[str | None, str | None]:
    """The target word and reject type of one statement, (None, None) if not a target."""
    if not isinstance(s, Mapping) or not s:
        return None, None
    key, _arg = next(iter(s.items()))
    if key in ("accept", "drop", "return", "continue", "queue", "jump", "goto", "log",
               "dnat", "snat", "masquerade", "redirect", "notrack", "vmap"):
        return str(key), None
    if key == "reject":
        text = nft_render.stmt_text(s, family)
        with_ = text.removeprefix("reject").removeprefix(" with ").strip()
        if not with_:
            with_ = {"ip": "icmp port-unreachable", "ip6": "icmpv6 port-unreachable"}.get(
                family, "icmpx port-unreachable")
        return "reject", with_
    return None, None


def _mark_dynamic_sets(rs: NftRuleset) -> None:
    """Sets updated from rules (``add @s``/``update @s``, meters) hold runtime state."""
    dyn: set[tuple[str, str, str]] = set()
    for c in rs.chains.values():
        for r in c.rules:
            for s in r.expr:
                if isinstance(s, Mapping) and isinstance(s.get("set"), Mapping):
                    dyn.add((c.family, c.table, str(s["set"].get("set", "")).lstrip("@")))
    for key, st in list(rs.sets.items()):
        if key in dyn or "dynamic" in st.flags:
            rs.sets[key] = NftSet(st.family, st.table, st.name, st.type, st.handle, st.flags,
                                  st.map_type, st.elements, True, st.location)


def _mark_iptables_tables(rs: NftRuleset) -> None:
    for key, t in list(rs.tables.items()):
        chains = [c for c in rs.chains.values() if (c.family, c.table) == key]
        reason = None
        if any(isinstance(s, Mapping) and "xt" in s for c in chains for r in c.rules
               for s in r.expr):
            reason = "holds xt (iptables compat) expressions"
        elif (t.family in ("ip", "ip6", "arp", "bridge") and t.name in IPTABLES_TABLES
              and any(c.is_base for c in chains)
              and all(c.name in IPTABLES_CHAINS for c in chains if c.is_base)):
            reason = "has iptables table and chain names"
        if reason:
            rs.tables[key] = NftTable(t.family, t.name, t.handle, t.flags, reason)
            rs.notes.append(f"table {t.family} {t.name} is managed by iptables-nft ({reason}); "
                            "it is read and traced through the iptables path, not here")


def read_live(timeout: float = 30.0) -> NftRuleset:
    """The live ruleset via ``nft -j list ruleset`` (read-only); NftError when unreadable."""
    if shutil.which("nft") is None:
        raise NftError("nftables: the nft command is not installed; nftables rules not read")
    try:
        proc = subprocess.run(LIVE_COMMAND, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NftError(f"nftables: could not run {' '.join(LIVE_COMMAND)}: {exc}") from None
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        if "Operation not permitted" in msg or "Permission denied" in msg:
            msg += " (reading nftables rules needs root or CAP_NET_ADMIN)"
        raise NftError(f"nftables: {' '.join(LIVE_COMMAND)}: {msg}")
    return load_json(proc.stdout, " ".join(LIVE_COMMAND))
