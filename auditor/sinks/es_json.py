"""Direct JSON for events: the :func:`auditor.models.to_ecs` document without the dicts.

Shipping a million events is bound by serialisation, so an event is written
straight to compact JSON text from a field tree computed once from the ECS
metadata of :class:`~auditor.models.Event`: no nested dicts are built and strings
go through the C string encoder of :mod:`json`. ``json.loads(event_json(e))``
equals ``to_ecs(e)`` (plus the fields the caller appends); a test checks it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from auditor.models import Event, plain

_enc = json.encoder.encode_basestring
_any = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode

# (json key prefix, attribute name or None, subtree or None)
Node = list[tuple[str, str | None, "Node | None"]]
SPECIAL = ("log", "auditor", "host")  # merged with location, extra and the host's name


def _build() -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for f in dataclasses.fields(Event):
        path = f.metadata.get("ecs")
        if path is None or f.name == "extra":
            continue
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = f.name
    return tree


def _compile(tree: dict[str, Any]) -> Node:
    return [
        (_enc(key) + ":", sub if isinstance(sub, str) else None,
         None if isinstance(sub, str) else _compile(sub))
        for key, sub in tree.items()
    ]


_TYPES = {f.name: str(f.type) for f in dataclasses.fields(Event)}
_TREE = _build()
_TOP: Node = _compile({k: v for k, v in _TREE.items() if k not in SPECIAL})
_SUBS: dict[str, Node] = {k: _compile(v) for k, v in _TREE.items() if k in SPECIAL}


def value_json(value: Any) -> str:
    """One value as JSON, as ``to_ecs`` would render it (datetimes in ISO 8601)."""
    kind = type(value)
    if kind is str:
        return _enc(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return float.__repr__(value) if value - value == 0 else str(_any(value))
    if kind is datetime:
        return '"' + str(value.isoformat()) + '"'
    if kind is tuple:
        if all(type(v) is str for v in value):
            return "[" + ",".join(map(_enc, value)) + "]"
        return "[" + ",".join(map(value_json, value)) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(_enc(str(k)) + ":" + value_json(v) for k, v in value.items()) + "}"
    return _any(plain(value))


def _gen_node(node: Node, var: str, lines: list[str], indent: str, depth: int) -> None:
    for prefix, attr, sub in node:
        if attr is not None:
            # the declared type picks the fast path; any other value takes the general one
            fast = {"str": "str", "int": "int"}.get(_TYPES[attr].replace(" | None", ""))
            if fast:
                render = "enc(v)" if fast == "str" else "repr(v)"
                lines += [
                    f"{indent}v = e.{attr}",
                    f"{indent}if v is not None:",
                    f"{indent}    if type(v) is {fast}:",
                    f"{indent}        {var}.append({prefix!r} + {render})",
                    f"{indent}    elif v is not False and v != ():",
                    f"{indent}        {var}.append({prefix!r} + vj(v))",
                ]
                continue
            lines += [
                f"{indent}v = e.{attr}",
                f"{indent}if v is not None and v is not False and v != ():",
                f"{indent}    {var}.append({prefix!r} + vj(v))",
            ]
        elif sub is not None:
            inner = f"g{depth}"
            lines.append(f"{indent}{inner} = []")
            _gen_node(sub, inner, lines, indent, depth + 1)
            lines += [f"{indent}if {inner}:",
                      f"{indent}    {var}.append({prefix!r} + '{{' + ','.join({inner}) + '}}')"]


_EVENT_JSON_TAIL = """
    g = []
{log}
    loc = e.location
    line = loc.line
    g.append('"file":{{"path":' + enc(loc.path) + (',"line":' + repr(line) if line else '') + '}}')
    if loc.offset is not None:
        g.append('"offset":' + repr(loc.offset))
    out.append('"log":{{' + ','.join(g) + '}}')
    g = []
{auditor}
    x = e.extra
    if x:
        for k, v in x.items():
            t = type(v)
            val = enc(v) if t is str else repr(v) if t is int else vj(v)
            g.append(enc(k if type(k) is str else str(k)) + ':' + val)
    if g:
        out.append('"auditor":{{' + ','.join(g) + '}}')
    g = []
{host}
    if e.{host_attr} is None:
        g.append('"name":' + enc(host))
    out.append('"host":{{' + ','.join(g) + '}}')
    return '{{' + ','.join(out) + tail + '}}'
"""


def _generate() -> Any:
    """One flat function writing the whole document: no recursion, no dicts, no lookups."""
    lines = ["def event_json(e, host, tail=''):", "    out = []"]
    _gen_node(_TOP, "out", lines, "    ", 0)
    parts = {}
    for key in SPECIAL:
        sub: list[str] = []
        _gen_node(_SUBS[key], "g", sub, "    ", 0)
        parts[key] = "\n".join(sub) or "    pass"
    code = "\n".join(lines) + _EVENT_JSON_TAIL.format(host_attr=_TREE["host"]["name"], **parts)
    scope: dict[str, Any] = {"enc": _enc, "vj": value_json}
    exec(code, scope)  # code built from our own dataclass metadata only
    return scope["event_json"]


_event_json = _generate()


def event_json(event: Event, host: str, tail: str = "") -> str:
    """The ECS document of ``event`` as compact JSON; ``host`` fills a missing host.name.

    ``tail`` is appended inside the top-level object (``,"key":value...``).
    """
    return _event_json(event, host, tail)  # type: ignore[no-any-return]
