"""A pyparsing grammar for one rule of ``nft list ruleset`` text, into nft JSON statements.

``nft -a list ruleset`` prints each rule on one line::

    tcp dport @svc ct state new limit rate over 5/second counter packets 37 bytes 2220 jump x

:func:`parse_rule` turns such a line (its ``# handle N`` already cut off) into the
statement list ``nft -j list ruleset`` gives for the same rule (``{"match": ...}``,
``{"limit": ...}``, ``{"jump": {"target": "x"}}``...) and its comment, so the text
reader (:mod:`auditor.firewall.nft_text`) builds exactly the model the JSON reader
builds and the evaluator needs nothing new. :func:`parse_elements` reads the
``elements = { ... }`` of a named set or map.

Values are read as nft prints them: numbers and ``0x`` marks as integers, durations
(``1h30m``, ``59m59s992ms``) as whole seconds, ``a-b`` ranges, ``addr/len`` prefixes,
``a,b`` flag lists, ``@set`` references and quoted names as strings. Comparisons
without an operator are ``in`` on flag fields (``ct state new``) and ``==`` elsewhere,
as in nft's JSON. What the grammar does not know raises :class:`TextError`; the
caller keeps the rule as unreadable, with its line. ``ParseResults`` never leave here.
"""

from __future__ import annotations

import re
from typing import Any

import pyparsing as pp

from auditor.firewall.nft_text_values import flag_lhs, lists, scalar, seconds

__all__ = ["TextError", "parse_elements", "parse_rule"]


class TextError(ValueError):
    """A line the grammar cannot read (the message says where)."""


IDENT = pp.alphanums + "_-"
PROTOS = ("ip", "ip6", "tcp", "udp", "udplite", "sctp", "dccp", "th", "icmp", "icmpv6",
          "ether", "vlan", "arp", "ah", "esp", "comp", "igmp", "gre")
UNQUALIFIED_META = ("iifname", "oifname", "iifgroup", "oifgroup", "iif", "oif")
OPTION_FIELDS = ("size", "kind", "length", "count", "tsval", "tsecr", "left", "right",
                 "value", "subtype")


def K(word: str) -> pp.Keyword:
    return pp.Keyword(word, ident_chars=IDENT)


def _one_of(words: tuple[str, ...]) -> pp.ParserElement:
    """Any of ``words`` as a whole word, in one regular expression (fast)."""
    alts = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return pp.Regex(rf"(?:{alts})(?![\w-])")


def _build() -> tuple[pp.ParserElement, pp.ParserElement]:
    # -- tokens ------------------------------------------------------------------
    bare = pp.Regex(r'(?:[\w@\[*]|::)[^\s,{}"()|;]*(?:,[^\s,{}"()|;]+)*')
    bare.set_parse_action(lambda t: _token(scalar(t[0])))
    word = pp.Regex(r"[A-Za-z_][\w\-]*")
    qstr = pp.Regex(r'"[^"\n]*"').set_parse_action(lambda t: t[0][1:-1])
    name = qstr | word
    num = pp.Regex(r"0x[0-9a-fA-F]+|\d+").set_parse_action(lambda t: int(t[0], 0))
    dur = pp.Regex(r"(?:\d+(?:ms|[dhms]))+").set_parse_action(lambda t: seconds(t[0]))
    setref = pp.Regex(r"@[\w\-.]+")
    dot = pp.Suppress(pp.Regex(r"\.(?=\s)"))

    # -- left-hand expressions ---------------------------------------------------
    payload = (_one_of(PROTOS) + word).set_parse_action(
        lambda t: {"payload": {"protocol": t[0], "field": t[1]}})
    raw = pp.Regex(r"@(ll|nh|th|ih),(\d+),(\d+)").set_parse_action(lambda t: {"payload": {
        "base": t[0][1:3], "offset": int(t[0].split(",")[1]), "len": int(t[0].split(",")[2])}})
    option = (K("tcp") + K("option") + word + pp.Opt(_one_of(OPTION_FIELDS))).set_parse_action(
        lambda t: {"tcp option": {"name": t[2], **({"field": t[3]} if len(t) > 3 else {})}})
    meta = ((K("meta") + word) | _one_of(UNQUALIFIED_META)).set_parse_action(
        lambda t: {"meta": {"key": t[-1]}})
    ct = (K("ct") + pp.Opt(K("original") | K("reply"))("dir")
          + pp.Opt(K("ip6") | K("ip"))("fam") + word("key")).set_parse_action(_ct)
    fib_flag = _one_of(("saddr", "daddr", "mark", "iif", "oif"))
    fib = (K("fib") + pp.Group(fib_flag + pp.ZeroOrMore(dot + fib_flag))
           + _one_of(("oifname", "oif", "type"))).set_parse_action(
        lambda t: {"fib": {"result": t[2], "flags": list(t[1])}})
    numgen = (K("numgen") + (K("random") | K("inc")) + K("mod") + num
              + pp.Opt(K("offset") + num)).set_parse_action(
        lambda t: {"numgen": {"mode": t[1], "mod": t[3], "offset": t[5] if len(t) > 5 else 0}})
    other = (_one_of(("socket", "rt", "osf")) + word).set_parse_action(
        lambda t: {t[0]: {"key": t[1]}})
    atom = option | raw | payload | meta | ct | fib | numgen | other
    lhs_plain = (atom + pp.ZeroOrMore(dot + atom)).set_parse_action(
        lambda t: t[0] if len(t) == 1 else {"concat": list(t)})
    binop = pp.one_of("& | ^ << >>")
    lhs = (lhs_plain + pp.Opt(binop + bare)).set_parse_action(
        lambda t: t[0] if len(t) == 1 else {t[1]: [t[0], t[2]]})

    # -- values and sets -----------------------------------------------------------
    value = (bare + pp.ZeroOrMore(dot + bare)).set_parse_action(
        lambda t: _token(t[0]) if len(t) == 1 else {"concat": list(t)})
    quoted_value = qstr.copy()
    verdict = (_one_of(("accept", "drop", "continue", "return")).set_parse_action(
        lambda t: {t[0]: None})
        | (_one_of(("jump", "goto")) + name).set_parse_action(
            lambda t: {t[0]: {"target": t[1]}}))
    elem_opts = pp.ZeroOrMore(
        (K("timeout") + dur) | (K("expires") + dur) | (K("comment") + qstr)
        | (K("counter") + K("packets") + num + K("bytes") + num))
    key = quoted_value | value
    data = verdict | quoted_value | value
    element = (key + pp.Group(elem_opts) + pp.Opt(pp.Suppress(pp.Regex(r":(?=\s)")) + data)
               ).set_parse_action(_element)
    anon_set = (pp.Suppress("{") + pp.Opt(pp.DelimitedList(element)) + pp.Suppress("}")
                ).set_parse_action(lambda t: {"set": list(t)})
    rhs = anon_set | setref | quoted_value | value

    # -- statements ----------------------------------------------------------------
    op = pp.one_of("== != <= >= < >")
    mask = (pp.Opt(op) + value + pp.Suppress(pp.Regex(r"/(?=\s)")) + value)
    map_expr = (lhs + K("map") + (anon_set | setref)).set_parse_action(
        lambda t: {"map": {"key": t[0], "data": t[2]}})
    ct_helper = (K("ct") + K("helper") + K("set") + name).set_parse_action(
        lambda t: {"ct helper": t[3]})
    # one left-hand side, then what it is for: a verdict map, a change, or a comparison
    expr_stmt = lhs + (
        (K("vmap") + (anon_set | setref)).set_parse_action(lambda t: _token(["vmap", t[1]]))
        | (K("set") + (map_expr | lhs | quoted_value | value)).set_parse_action(
            lambda t: _token(["set", t[1]]))
        | (mask | (pp.Opt(op) + rhs)).set_parse_action(lambda t: _token(["match", t.as_list()])))
    expr_stmt.set_parse_action(_expr_stmt)
    counter = (K("counter") + pp.Opt((K("packets") + num + K("bytes") + num)
                                     | (K("name") + name))).set_parse_action(_counter)
    log_flag = (K("all") | (K("tcp") + bare) | (K("ip") + bare) | K("skuid") | K("ether"))
    log = (K("log") + pp.ZeroOrMore(
        pp.Group(K("prefix") + qstr) | pp.Group(K("level") + word)
        | pp.Group(_one_of(("group", "snaplen", "queue-threshold")) + num)
        | pp.Group(K("flags") + pp.Group(log_flag + pp.ZeroOrMore(log_flag))))
    ).set_parse_action(_log)
    rate = pp.Regex(r"(\d+)/(second|minute|hour|day|week)")
    brate = pp.Regex(r"(\d+) ([kmg]?bytes)/(second|minute|hour|day|week)")
    limit = ((K("limit") + K("rate") + pp.Opt(K("over"))("over")
              + (rate("rate") + pp.Opt(K("burst") + num("burst") + K("packets"))
                 | brate("brate") + pp.Opt(K("burst") + num("burst") + word("bunit"))))
             .set_parse_action(_limit)
             | (K("limit") + K("name") + name).set_parse_action(lambda t: {"limit": t[2]}))
    reject = (K("reject") + pp.Opt(K("with").suppress() + (
        (K("tcp") + K("reset")).set_parse_action(lambda: {"type": "tcp reset"})
        | (_one_of(("icmpx", "icmpv6", "icmp")) + pp.Opt(K("type").suppress()) + word)
        .set_parse_action(lambda t: {"type": t[0], "expr": t[1]})))
    ).set_parse_action(lambda t: {"reject": t[1] if len(t) > 1 else None})
    ct_count = (K("ct") + K("count") + pp.Opt(K("over"))("over") + num("val")).set_parse_action(
        lambda t: {"ct count": {"val": t.val, **({"inv": True} if t.over else {})}})
    quota = (K("quota") + pp.Opt(K("over"))("over") + num("val") + word("unit")
             + pp.Opt(K("used") + num("used") + word("uunit"))).set_parse_action(_quota)
    elem_key = (lhs + pp.Opt(K("timeout") + dur)).set_parse_action(
        lambda t: t[0] if len(t) == 1 else {"elem": {"val": t[0], "timeout": t[2]}})
    stmt = pp.Forward()
    set_stmt = (_one_of(("add", "update", "delete")) + setref + pp.Suppress("{") + elem_key
                + pp.Group(pp.ZeroOrMore(stmt)) + pp.Suppress("}")).set_parse_action(
        lambda t: {"set": {"op": t[0], "elem": t[2], "set": t[1],
                           **({"stmt": list(t[3])} if len(t[3]) else {})}})
    meter = (K("meter") + word + pp.Opt(K("size") + num) + pp.Suppress("{") + elem_key + stmt
             + pp.Suppress("}")).set_parse_action(_meter)
    nat_flags = pp.Opt(pp.Regex(r"(random|fully-random|persistent)(,(random|fully-random|"
                                r"persistent))*").set_parse_action(lambda t: {"_flags": t[0]}))
    nat_to = pp.Opt(K("to").suppress() + (map_expr | pp.Regex(r"[\[\]\w.:/\-]+"))
                    .set_parse_action(lambda t: {"_to": t[0]}))
    nat = ((_one_of(("dnat", "snat")) + pp.Opt(K("ip6") | K("ip")) + nat_to + nat_flags)
           | (_one_of(("masquerade", "redirect")) + nat_to + nat_flags)).set_parse_action(_nat)
    simple = (_one_of(("notrack",)).set_parse_action(lambda t: {t[0]: None})
              | (K("xt") + (K("match") | K("target")) + name).set_parse_action(
                  lambda t: {"xt": {"type": t[1], "name": t[2]}})
              | (K("flow") + K("add") + setref).set_parse_action(
                  lambda t: {"flow": {"op": "add", "flowtable": t[2]}})
              | (K("queue") + pp.ZeroOrMore(pp.Group(
                  (K("num") | K("to")) + bare | K("flags") + bare))).set_parse_action(_queue))
    # the comparisons first (most statements are), after ct count/helper (which their
    # left side would take for `ct count` and `ct helper` expressions)
    stmt <<= (ct_count | ct_helper | expr_stmt | verdict | counter | log | limit | reject
              | quota | set_stmt | meter | nat | simple)
    rule = (pp.Group(pp.OneOrMore(stmt)) + pp.Opt(K("comment") + qstr) + pp.StringEnd())
    elements = pp.Suppress("{") + pp.Opt(pp.DelimitedList(element)) + pp.Suppress("}") \
        + pp.StringEnd()
    return rule, elements


def _ct(t: pp.ParseResults) -> dict[str, Any]:
    body: dict[str, Any] = {"key": t.key}
    if t.dir:
        body["dir"] = t.dir
    if t.fam:
        body["family"] = t.fam
    return {"ct": body}


def _element(t: pp.ParseResults) -> Any:
    key, opts = t[0], list(t[1])
    if opts:
        el: dict[str, Any] = {"val": key}
        i = 0
        while i < len(opts):
            if opts[i] == "counter":
                el["counter"] = {"packets": opts[i + 2], "bytes": opts[i + 4]}
                i += 5
            else:
                el[opts[i]] = opts[i + 1]
                i += 2
        key = {"elem": el}
    return _token([key, t[2]]) if len(t) > 2 else key


def _token(v: Any) -> Any:
    """A list stays one token (pyparsing would spread a returned list over several)."""
    return pp.ParseResults.List(v) if isinstance(v, list) else v  # type: ignore[no-untyped-call]


def _expr_stmt(t: pp.ParseResults) -> dict[str, Any]:
    left, (kind, arg) = t[0], t[1]
    if kind == "vmap":
        return {"vmap": {"key": left, "data": arg}}
    if kind == "set":
        return {"mangle": {"key": left, "value": arg}}
    return _match(left, arg)


def _match(left: Any, rest: list[Any]) -> dict[str, Any]:
    op = rest.pop(0) if len(rest) in (2, 3) and isinstance(rest[0], str) \
        and rest[0] in ("==", "!=", "<=", ">=", "<", ">") else None
    if len(rest) == 2:  # value / mask on a flag field
        return {"match": {"op": op or "==", "left": {"&": [left, rest[1]]}, "right": rest[0]}}
    right = rest[0]
    if op is None:
        explicit = isinstance(left, dict) and any(b in left for b in ("&", "|", "^", "<<", ">>"))
        op = "in" if flag_lhs(left) and not explicit and not (
            isinstance(right, dict) and "set" in right) and not (
            isinstance(right, str) and right.startswith("@")) else "=="
    if isinstance(right, str) and right in ("exists", "missing"):
        right = right == "exists"
    return {"match": {"op": op, "left": left, "right": right}}


def _counter(t: pp.ParseResults) -> dict[str, Any]:
    if len(t) == 1:
        return {"counter": None}
    if t[1] == "name":
        return {"counter": t[2]}
    return {"counter": {"packets": t[2], "bytes": t[4]}}


def _log(t: pp.ParseResults) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for g in t[1:]:
        if g[0] == "flags":
            flags = lists(list(g[1]))
            body["flags"] = flags[0] if len(flags) == 1 else flags
        else:
            body[g[0]] = g[1]
    return {"log": body or None}


def _limit(t: pp.ParseResults) -> dict[str, Any]:
    body: dict[str, Any]
    if t.rate:
        m = re.fullmatch(r"(\d+)/(\w+)", t.rate)
        assert m is not None
        body = {"rate": int(m[1]), "burst": t.burst if t.burst != "" else 5, "per": m[2]}
    else:
        m = re.fullmatch(r"(\d+) (\w+)/(\w+)", t.brate)
        assert m is not None
        body = {"rate": int(m[1]), "burst": t.burst if t.burst != "" else 0, "per": m[3]}
    if t.over:
        body["inv"] = True
    if t.brate:
        body["rate_unit"] = m[2]
        body["burst_unit"] = t.bunit or "bytes"
    return {"limit": body}


def _quota(t: pp.ParseResults) -> dict[str, Any]:
    body: dict[str, Any] = {"val": t.val, "val_unit": t.unit}
    if t.over:
        body["inv"] = True
    if t.used != "":
        body["used"], body["used_unit"] = t.used, t.uunit
    return {"quota": body}


def _meter(t: pp.ParseResults) -> dict[str, Any]:
    body: dict[str, Any] = {"key": t[-2], "stmt": t[-1], "name": t[1]}
    if len(t) > 4:
        body["size"] = t[3]
    return {"meter": body}


def _nat(t: pp.ParseResults) -> dict[str, Any]:
    kind = t[0]
    body: dict[str, Any] = {}
    for tok in t[1:]:
        if tok in ("ip", "ip6"):
            body["family"] = tok
        elif "_to" in tok:
            to = tok["_to"]
            body.update({"addr": to} if isinstance(to, dict) else _nat_target(to, kind))
        else:
            fl = tok["_flags"].split(",")
            body["flags"] = fl[0] if len(fl) == 1 else fl
    return {kind: body or None}


def _nat_target(to: Any, kind: str) -> dict[str, Any]:
    """``192.0.2.1:80``, ``[2001:db8::5]:8080``, ``:8080``, ranges, as nft's JSON has them."""
    if not isinstance(to, str):  # a plain address, prefix or range scalar() already read
        return {"addr": to}
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(.+))?", to) or \
        re.fullmatch(r"(\d+\.\d+\.\d+\.\d+(?:-\d+\.\d+\.\d+\.\d+)?)?(?::(.+))?", to)
    if m is None:
        if kind in ("masquerade", "redirect"):
            raise TextError(f"{kind} to {to!r}: not a port")
        return {"addr": scalar(to)}
    out: dict[str, Any] = {}
    if m[1]:
        out["addr"] = scalar(m[1])
    if m[2]:
        out["port"] = scalar(m[2])
    return out


def _queue(t: pp.ParseResults) -> dict[str, Any]:
    body = {g[0]: g[1] for g in t[1:]}
    if "to" in body:
        body["num"] = body.pop("to")
    return {"queue": body or None}


def _plain(v: Any) -> Any:
    """``v`` with any ParseResults left inside parse actions' values made plain lists."""
    if isinstance(v, pp.ParseResults | list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


_GRAMMAR: tuple[pp.ParserElement, pp.ParserElement] | None = None


def _grammar() -> tuple[pp.ParserElement, pp.ParserElement]:
    global _GRAMMAR
    if _GRAMMAR is None:
        _GRAMMAR = _build()
    return _GRAMMAR


def _where(text: str, exc: pp.ParseBaseException) -> str:
    """Where the grammar stopped: the column and the word found there."""
    rest = text[max(exc.loc, 0):].split()
    found = repr(rest[0][:40]) if rest else "the end of the line"
    return f"not understood at column {exc.loc + 1} ({found})"


def parse_rule(line: str) -> tuple[list[Any], str | None]:
    """The JSON statements and comment of one rule line; TextError when unreadable."""
    try:
        res = _grammar()[0].parse_string(line, parse_all=True)
    except pp.ParseBaseException as exc:
        raise TextError(_where(line, exc)) from None
    except TextError:
        raise
    except (ValueError, IndexError, KeyError) as exc:  # a value that does not read
        raise TextError(str(exc)) from None
    stmts = _plain(res[0].as_list())
    comment = res[2] if len(res) > 2 else None
    return stmts, comment


def parse_elements(body: str) -> list[Any]:
    """The elements of ``{ a, b, c }`` (a named set's or map's); TextError when unreadable."""
    try:
        return list(_plain(_grammar()[1].parse_string(body, parse_all=True).as_list()))
    except pp.ParseBaseException as exc:
        raise TextError("elements " + _where(body, exc)) from None
    except (ValueError, IndexError, KeyError) as exc:
        raise TextError(str(exc)) from None
