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
        return str(_any(value))
    if kind is datetime:
        return '"' + str(value.isoformat()) + '"'
    if kind is tuple:
        return "[" + ",".join(map(value_json, value)) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(_enc(str(k)) + ":" + value_json(v) for k, v in value.items()) + "}"
    return _any(plain(value))


def _gen_node(node: Node, var: str, lines: list[str], indent: str, depth: int) -> None:
    for prefix, attr, sub in node:
        if attr is not None:
            lines += [
                f"{indent}v = e.{attr}",
                f"{indent}if v is not None and v is not False and v != ():",
                f"{indent}    t = type(v)",
                f"{indent}    {var}.append({prefix!r} + (enc(v) if t is str else "
                f"repr(v) if t is int else vj(v)))",
            ]
        elif sub is not None:
            inner = f"g{depth}"
            lines.append(f"{indent}{inner} = []")
            _gen_node(sub, inner, lines, indent, depth + 1)
            lines += [f"{indent}if {inner}:",
                      f"{indent}    {var}.append({prefix!r} + '{{' + ','.join({inner}) + '}}')"]


def _generate(node: Node, name: str) -> Any:
    """A flat function ``f(e, out)`` appending the node's parts: no recursion, no lookups."""
    lines = [f"def {name}(e, out):"]
    _gen_node(node, "out", lines, "    ", 0)
    lines.append("    return out")
    scope: dict[str, Any] = {"enc": _enc, "vj": value_json}
    exec("\n".join(lines), scope)  # code built from our own dataclass metadata only
    return scope[name]


def _parts(node: Node, event: Event, out: list[str]) -> list[str]:
    for prefix, attr, sub in node:
        if attr is not None:
            value = getattr(event, attr)
            if value is None or value is False or value == ():
                continue
            out.append(prefix + value_json(value))
        elif sub is not None:
            inner = _parts(sub, event, [])
            if inner:
                out.append(prefix + "{" + ",".join(inner) + "}")
    return out


_top_parts = _generate(_TOP, "top_parts")
_sub_parts = {k: _generate(v, f"{k}_parts") for k, v in _SUBS.items()}


def event_json(event: Event, host: str, tail: str = "") -> str:
    """The ECS document of ``event`` as compact JSON; ``host`` fills a missing host.name.

    ``tail`` is appended inside the top-level object (``,"key":value...``).
    """
    out: list[str] = _top_parts(event, [])
    log: list[str] = _sub_parts["log"](event, [])
    loc = event.location
    file = '"file":{"path":' + _enc(loc.path) + (f',"line":{loc.line}' if loc.line else "") + "}"
    log.append(file)
    if loc.offset is not None:
        log.append(f'"offset":{loc.offset}')
    out.append('"log":{' + ",".join(log) + "}")
    aud: list[str] = _sub_parts["auditor"](event, [])
    if event.extra:
        enc = _enc
        for k, v in event.extra.items():
            t = type(v)
            val = enc(v) if t is str else repr(v) if t is int else value_json(v)
            aud.append(enc(k if type(k) is str else str(k)) + ":" + val)
    if aud:
        out.append('"auditor":{' + ",".join(aud) + "}")
    hst: list[str] = _sub_parts["host"](event, [])
    if not any(p.startswith('"name":') for p in hst):
        hst.append('"name":' + _enc(host))
    out.append('"host":{' + ",".join(hst) + "}")
    return "{" + ",".join(out) + tail + "}"
