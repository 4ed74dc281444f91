"""Evaluate nftables rules for a :class:`~auditor.firewall.model.Packet`.

:func:`compile_ruleset` turns every rule of the chains of an nftables ruleset
once into a list of steps (matches, conditions, mark changes, verdicts); named and
anonymous sets become :class:`ValueMap` lookups (hash sets plus sorted interval
lists), so loading and tracing stay linear in the ruleset's size. Long chains are
indexed by the exact destination address, source address or destination port their
rules require (:mod:`auditor.firewall.nft_index`), so a packet is tried only against
the rules that could match it.

Semantics follow the kernel: a rule matches when all its matches do; ``accept`` ends
the base chain, ``drop``/``reject`` the packet; ``jump`` returns, ``goto`` does not;
falling off a base chain applies its policy; a NAT statement accepts and rewrites the
packet (:mod:`auditor.firewall.nft_nat`, :func:`auditor.firewall.nat.translate`). Matches on state a
static ruleset cannot know (``limit``, ``ct count``, ``quota``, meters and dynamic
sets, ``numgen``/hashes) make the rule *conditional*; expressions auditor cannot
evaluate make it *not evaluated*. Both are reported and treated as a miss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from auditor.firewall import nft_render
from auditor.firewall.jumps import MAX_RULE_VISITS, budget_reason
from auditor.firewall.model import (
    ChainOutcome,
    Conditional,
    HookChain,
    NotEvaluated,
    Packet,
    Policy,
    RuleRef,
    TraceEnv,
)
from auditor.firewall.nat import translate
from auditor.firewall.nft_index import MAX_KEYS, IndexedChain, Key, best_key, key_field, safe_left
from auditor.firewall.nft_nat import SKIP, compile_nat
from auditor.firewall.nft_objects import BACKEND, NftChain, NftRule, NftSet
from auditor.firewall.nft_values import (
    MISSING,
    PV,
    Unknown,
    Unsupported,
    ValueMap,
    build_map,
    getter,
    norm,
)

MATCH, COND, MARK, VERDICT, VMAP, UNKNOWN, NAT = range(7)
MAX_DEPTH = 16  # the kernel's jump stack
Step = tuple[Any, ...]
Verdict = tuple[str, Any]
CONTINUE: Verdict = ("continue", None)
_DYN_OPS = ("numgen", "jhash", "symhash")


class _Rule:
    __slots__ = ("family", "final_stmt", "key", "ref", "steps")

    def __init__(self, ref: RuleRef, steps: list[Step], final_stmt: Any, family: str,
                 key: Key | None) -> None:
        self.ref, self.steps, self.key = ref, steps, key
        self.final_stmt, self.family = final_stmt, family

    @property
    def final(self) -> str | None:
        """The rule's verdict statement as text (what it does when it matches)."""
        if self.final_stmt is None:
            return None
        return nft_render.stmt_text(self.final_stmt, self.family)


class _Chain:
    __slots__ = ("chain", "index", "rules")

    def __init__(self, chain: NftChain, rules: list[_Rule]) -> None:
        self.chain, self.rules = chain, rules
        self.index = IndexedChain([r.key for r in rules])

    def candidates(self, pv: PV) -> list[int]:
        return self.index.candidates(pv.daddr, pv.saddr, pv.dport, pv.proto)


class Compiled:
    """A ruleset compiled for tracing; :meth:`run` implements ``Ruleset.run_chain``."""

    def __init__(self, chains: Mapping[tuple[str, str, str], NftChain],
                 sets: Mapping[tuple[str, str, str], NftSet]) -> None:
        self.sets = sets
        self._maps: dict[tuple[Any, ...], ValueMap] = {}
        self._pv: PV | None = None  # the last packet's view, reused across its base chains
        self.chains: dict[tuple[str, str, str], _Chain] = {}
        for key, ch in chains.items():
            self.chains[key] = _Chain(ch, [self._compile_rule(ch, r) for r in ch.rules])

    # -- compiling ---------------------------------------------------------------
    def _named(self, ch: NftChain, ref: str, ftype: Any) -> ValueMap | str:
        """The lookup for ``@name`` in the rule's table, or a condition text if dynamic."""
        name = ref.lstrip("@")
        st = self.sets.get((ch.family, ch.table, name))
        if st is None:
            raise Unsupported(f"set @{name} not found in table {ch.family} {ch.table}")
        if st.dynamic:
            return f"contents of dynamic set @{name} (filled at runtime)"
        key = (ch.family, ch.table, name, repr(ftype))
        if key not in self._maps:
            self._maps[key] = build_map(st.elements, ftype, is_map=st.map_type is not None,
                                        verdicts=st.map_type == "verdict")
        return self._maps[key]

    def _match(self, ch: NftChain, m: Mapping[str, Any]) -> Step:
        op, left, right = m.get("op", "=="), m["left"], m["right"]
        if _dynamic(left):
            return (COND, f"{nft_render.match_text(m)} (depends on a random or hash value)")
        ftype, get = getter(left)
        safe = safe_left(left)
        field = key_field(left) if op in ("==", "in") else None
        if isinstance(right, str) and right.startswith("@"):
            vm = self._named(ch, right, ftype)
            if isinstance(vm, str):
                return (COND, f"{nft_render.expr(left)} in the {vm}")
            return (MATCH, _set_test(get, vm, op != "!="), _set_key(field, vm), safe)
        if isinstance(ftype, list) or (isinstance(right, Mapping) and "set" in right):
            elems = right["set"] if isinstance(right, Mapping) and "set" in right else [right]
            vm = build_map(elems, ftype)
            return (MATCH, _set_test(get, vm, op != "!="), _set_key(field, vm), safe)
        rhs = norm(ftype, right)
        key = (field[0], frozenset([rhs[1]]), field[1]) if field and rhs[0] == "exact" else None
        return (MATCH, _cmp_test(get, ftype, op, rhs), key, safe)

    def _compile_rule(self, ch: NftChain, rule: NftRule) -> _Rule:
        steps: list[Step] = []
        final: Any = None
        keys: list[Key] = []
        reach = True  # every step so far is a match that never says "not evaluated"
        for s in rule.expr:
            try:
                step = self._stmt(ch, rule, s)
            except Unsupported as exc:
                step = (UNKNOWN, str(exc))
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                step = (UNKNOWN, f"cannot evaluate {nft_render.stmt_text(s, ch.family)!r}: {exc}")
            if step[0] in (VERDICT, VMAP, NAT) and final is None:
                final = s
            if reach and step[0] == MATCH:
                if step[2] is not None:
                    keys.append(step[2])
                reach = step[3]
            elif step[0] is not None:
                reach = False
            if step[0] is not None:
                steps.append(step)
        return _Rule(rule.ref, steps, final, ch.family, best_key(keys))

    def _stmt(self, ch: NftChain, rule: NftRule, s: Any) -> Step:
        if not isinstance(s, Mapping) or len(s) != 1:
            raise Unsupported(f"malformed statement {s!r}")
        key, arg = next(iter(s.items()))
        if key == "match":
            return self._match(ch, arg)
        if key == "unreadable":
            raise Unsupported("rule text not understood (nft list ruleset text); not evaluated")
        if key in ("accept", "drop", "return", "continue"):
            return (VERDICT, (key, None))
        if key in ("jump", "goto"):
            return (VERDICT, (key, str(arg["target"])))
        if key == "reject":
            return (VERDICT, ("reject", rule.ref.reject_with))
        if key in ("dnat", "snat", "masquerade", "redirect"):
            kind, what = compile_nat(key, arg, lambda ref, ft: self._named(ch, ref, ft))
            return (NAT, what) if kind == "nat" else (COND, what)
        if key in ("counter", "log", "notrack", "flow", "dup"):
            return (None,)
        text = nft_render.stmt_text(s, ch.family)
        if key == "limit":
            return (COND, _limit_condition(arg, text))
        if key == "ct count":
            n = arg.get("val")
            return (COND, f"more than {n} connections ({text})" if arg.get("inv")
                    else f"at most {n} connections ({text})")
        if key == "quota":
            return (COND, f"after {arg.get('val')} {arg.get('val_unit')} ({text})"
                    if arg.get("inv") else f"until {arg.get('val')} {arg.get('val_unit')} ({text})")
        if key == "set":
            if arg.get("stmt"):
                return (COND, f"per {nft_render.expr(arg.get('elem'))} in meter "
                              f"{arg.get('set')}: {text}")
            return (None,)
        if key == "meter":
            return (COND, f"per {nft_render.expr(arg.get('key'))} in meter {arg.get('name')}: "
                          f"{text}")
        if key == "mangle":
            return self._mangle(arg, text)
        if key == "vmap":
            ftype, get = getter(arg["key"])
            data = arg["data"]
            if isinstance(data, str):
                vm = self._named(ch, data, ftype)
                if isinstance(vm, str):
                    return (COND, f"{nft_render.expr(arg['key'])} in the {vm}")
            else:
                vm = build_map(data["set"], ftype, is_map=True, verdicts=True)
            return (VMAP, _vmap_lookup(get, vm))
        raise Unsupported(f"statement {text!r} not supported")

    def _mangle(self, arg: Mapping[str, Any], text: str) -> Step:
        k, v = arg.get("key"), arg.get("value")
        if isinstance(k, Mapping) and "meta" in k and k["meta"].get("key") == "mark":
            if isinstance(v, int):
                def set_mark(pv: PV, val: int = v) -> None:
                    pv.mark = val
                return (MARK, set_mark)
            raise Unsupported(f"{text!r}: only constant marks are evaluated")
        return (None,)  # other header/ct changes do not alter what later matches see here

    # -- running -----------------------------------------------------------------
    def run(self, hc: HookChain, packet: Packet, env: TraceEnv) -> ChainOutcome:
        pv = self._pv
        if pv is None or pv.packet is not packet or pv.env is not env:
            pv = self._pv = PV(packet, env)
        else:
            pv.mark = packet.mark  # the only field evaluation changes
        path: list[RuleRef] = []
        conds: list[Conditional] = []
        nevals: list[NotEvaluated] = []
        base = self.chains[(hc.family, hc.table, hc.chain)]
        cur, cands, pos = base, base.candidates(pv), 0
        stack: list[tuple[_Chain, list[int], int]] = []
        visits = 0
        while True:
            if pos >= len(cands):
                if not stack:
                    break
                cur, cands, pos = stack.pop()
                continue
            rule = cur.rules[cands[pos]]
            pos += 1
            visits += 1
            if visits > MAX_RULE_VISITS:
                nevals.append(NotEvaluated(rule.ref, budget_reason(hc.chain)))
                break
            v = self._exec(rule, pv, path, conds, nevals)
            if v is None or v[0] == "continue":
                continue
            kind = v[0]
            if kind in ("accept", "drop", "reject"):
                return self._outcome(kind, rule.ref, None, v[1], path, conds, nevals, pv)
            if kind == "nat":
                before = self._outcome("accept", rule.ref, None, None, path, conds, nevals, pv)
                packet, step = translate(v[1][0], v[1][1], before.packet or pv.packet, env,
                                         hc.hook, rule.ref)
                return replace(before, packet=packet, nat=step)
            if kind == "return":
                if not stack:
                    break
                cur, cands, pos = stack.pop()
            elif kind in ("jump", "goto"):
                target = self.chains.get((cur.chain.family, cur.chain.table, str(v[1])))
                if target is None or len(stack) >= MAX_DEPTH:
                    path.pop()
                    why = "not found" if target is None else "too deep (jump stack full)"
                    nevals.append(NotEvaluated(rule.ref, f"{kind} target chain {v[1]} {why}"))
                    continue
                if kind == "jump":
                    stack.append((cur, cands, pos))
                cur, cands, pos = target, target.candidates(pv), 0
            else:
                nevals.append(NotEvaluated(rule.ref, f"verdict {kind} not supported"))
        ch = base.chain
        pol = ch.policy or "accept"
        policy = Policy(BACKEND, ch.family, ch.table, ch.name, pol)
        verdict = "drop" if pol == "drop" else "accept"
        return self._outcome(verdict, None, policy, None, path, conds, nevals, pv)

    @staticmethod
    def _outcome(verdict: str, ref: RuleRef | None, policy: Policy | None, with_: Any,
                 path: list[RuleRef], conds: list[Conditional], nevals: list[NotEvaluated],
                 pv: PV) -> ChainOutcome:
        changed = pv.packet.with_mark(pv.mark) if pv.mark != pv.packet.mark else None
        return ChainOutcome(verdict, ref, policy,  # type: ignore[arg-type]
                            with_ if verdict == "reject" else None, tuple(path),
                            tuple(conds), tuple(nevals), changed)

    @staticmethod
    def _exec(rule: _Rule, pv: PV, path: list[RuleRef], conds: list[Conditional],
              nevals: list[NotEvaluated]) -> Verdict | None:
        for step in rule.steps:
            code = step[0]
            try:
                if code == MATCH:
                    if not step[1](pv):
                        return None
                elif code == VERDICT:
                    path.append(rule.ref)
                    return step[1]  # type: ignore[no-any-return]
                elif code == COND:
                    conds.append(Conditional(rule.ref, step[1], rule.final))
                    return None
                elif code == MARK:
                    step[1](pv)
                elif code == NAT:
                    to = step[1][1](pv)
                    if to is None:  # no element in the map: the rule breaks off
                        return None
                    if to is not SKIP:
                        path.append(rule.ref)
                        return ("nat", (step[1][0], to))
                elif code == VMAP:
                    v = step[1](pv)
                    if v is None:
                        return None
                    path.append(rule.ref)
                    return v  # type: ignore[no-any-return]
                else:
                    nevals.append(NotEvaluated(rule.ref, step[1]))
                    return None
            except Unknown as exc:
                nevals.append(NotEvaluated(rule.ref, str(exc)))
                return None
        path.append(rule.ref)
        return CONTINUE


def _set_test(get: Callable[[PV], Any], vm: ValueMap, want: bool) -> Callable[[PV], bool]:
    def test(pv: PV) -> bool:
        v = get(pv)
        if v is MISSING:
            return False
        return (vm.lookup(v) is not None) == want
    return test


def _cmp_test(get: Callable[[PV], Any], ftype: Any, op: str, rhs: Any) -> Callable[[PV], bool]:
    kind = rhs[0]
    if ftype == "flags":
        want = rhs[1]
        if op == "in":
            return lambda pv: (v := get(pv)) is not MISSING and bool(v & want)
        if op in ("==", "!="):
            eq = op == "=="
            return lambda pv: (v := get(pv)) is not MISSING and (v == want) == eq
        raise Unsupported(f"operator {op} on flags")
    if kind == "interval":
        lo, hi = rhs[1], rhs[2]
        inside = op in ("==", "in")
        if op not in ("==", "!=", "in"):
            raise Unsupported(f"operator {op} with a range")
        return lambda pv: (v := get(pv)) is not MISSING and (lo <= v <= hi) == inside
    if kind == "wild":
        pre = rhs[1]
        inside = op != "!="
        return lambda pv: (v := get(pv)) is not MISSING and v.startswith(pre) == inside
    c = rhs[1]
    if op in ("==", "in"):  # MISSING equals no constant
        return lambda pv: bool(get(pv) == c)
    if op == "!=":
        return lambda pv: (v := get(pv)) is not MISSING and bool(v != c)
    if op == "<":
        return lambda pv: (v := get(pv)) is not MISSING and bool(v < c)
    if op == ">":
        return lambda pv: (v := get(pv)) is not MISSING and bool(v > c)
    if op == "<=":
        return lambda pv: (v := get(pv)) is not MISSING and bool(v <= c)
    if op == ">=":
        return lambda pv: (v := get(pv)) is not MISSING and bool(v >= c)
    raise Unsupported(f"operator {op!r}")


def _vmap_lookup(get: Callable[[PV], Any], vm: ValueMap) -> Callable[[PV], Verdict | None]:
    def lookup(pv: PV) -> Verdict | None:
        v = get(pv)
        if v is MISSING:
            return None
        return vm.lookup(v)  # type: ignore[no-any-return]
    return lookup


def _dynamic(e: Any) -> bool:
    """True when expression ``e`` reads a random or hash value (numgen, jhash, symhash)."""
    if isinstance(e, dict):
        if "payload" in e or "meta" in e or "ct" in e:  # leaves: nothing nested
            return False
        return any(k in _DYN_OPS or _dynamic(v) for k, v in e.items())
    if isinstance(e, list):
        return any(_dynamic(x) for x in e)
    return False


def _set_key(field: tuple[str, bool] | None, vm: ValueMap) -> Key | None:
    """An index key for ``field in vm`` when the set holds only exact values."""
    if field is None or vm.spans or vm.wild or vm.concat or vm.flagsets:
        return None
    if not 0 < len(vm.exact) <= MAX_KEYS:
        return None
    return (field[0], frozenset(vm.exact), field[1])


def _limit_condition(arg: Mapping[str, Any], text: str) -> str:
    unit = arg.get("rate_unit", "packets")
    rate = f"{arg.get('rate')}/{arg.get('per')}" if unit == "packets" else \
        f"{arg.get('rate')} {unit}/{arg.get('per')}"
    burst = f" burst {arg.get('burst')}" if arg.get("burst") else ""
    if arg.get("inv"):
        return f"over {rate}{burst} ({text})"
    return f"while under {rate}{burst}; beyond that the rule does not match ({text})"


def compile_ruleset(chains: Mapping[tuple[str, str, str], NftChain],
                    sets: Mapping[tuple[str, str, str], NftSet]) -> Compiled:
    """Compile every chain once (linear in the number of rules and elements)."""
    return Compiled(chains, sets)
