"""Fast JSON for events: the :func:`auditor.models.to_ecs` document, serialised by orjson.

Shipping a million events is bound by serialisation. The nested ECS document of an
event is built by one flat function generated once from the ECS metadata of
:class:`~auditor.models.Event` (no path splitting, no ``setdefault`` walks, one
attribute read and one test per field) and written to UTF-8 JSON bytes by
`orjson <https://pypi.org/project/orjson/>`_ in C.

The bytes parse to exactly ``to_ecs(event)`` plus ``host.name`` (when the event has
none) plus the caller's extra top-level fields; a property test checks it. Values
orjson would render differently from :mod:`json` go through :func:`_default`
(datetimes as ``isoformat()``, other mappings with ``str`` keys, the rest as ``str``);
whatever orjson refuses (non-string keys, integers beyond 64 bits, lone surrogates)
falls back, for that event only, to ``to_ecs`` and the standard encoder. The bytes are
always valid UTF-8 with no raw
DEL, C1 or bidi control (written as ``\\uXXXX``, the same value once parsed): a lone
surrogate (an undecodable byte of a file name) is written as the text ``\\xNN``
(see :func:`auditor.sinks.text.utf8_clean`). One difference is deliberate: a NaN or
infinite float becomes ``null``, where :mod:`json` would write ``NaN``, which is
not JSON and which Elasticsearch refuses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson

from auditor.models import Event, plain, to_ecs
from auditor.sinks.text import dumps, json_bytes

_std = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode

SPECIAL = ("log", "auditor", "host")  # completed with location, extra and the host's name
_TYPES = {f.name: str(f.type).replace(" | None", "") for f in dataclasses.fields(Event)}


def _tree() -> dict[str, Any]:
    """ECS path tree of the mapped Event fields: ``{"source": {"ip": "source_ip"}, ...}``."""
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
    for key in SPECIAL:
        tree.setdefault(key, {})
    return tree


_TREE = _tree()
_HOST_ATTR: str = _TREE["host"]["name"]


def _gen_field(attr: str, target: str, key: str, indent: str) -> list[str]:
    # to_ecs leaves out None, () and False; a value of the declared scalar type is none of them
    fast = _TYPES[attr] if _TYPES[attr] in ("str", "int") else None
    keep = "v is not False and v != ()"
    cond = f"v.__class__ is {fast} or {keep}" if fast else keep
    return [f"{indent}v = e.{attr}",
            f"{indent}if v is not None and ({cond}):",
            f"{indent}    {target}[{key!r}] = v"]


def _gen_group(tree: dict[str, Any], var: str, indent: str, depth: int) -> list[str]:
    lines: list[str] = []
    for key, sub in tree.items():
        if isinstance(sub, str):
            lines += _gen_field(sub, var, key, indent)
            continue
        inner = f"g{depth}"
        lines.append(f"{indent}{inner} = {{}}")
        lines += _gen_group(sub, inner, indent, depth + 1)
        if var == "d" and key in SPECIAL:
            lines += [indent + code for code in _SPECIAL_CODE[key].format(g=inner).split("\n")]
        lines += [f"{indent}if {inner}:", f"{indent}    {var}[{key!r}] = {inner}"]
    return lines


_SPECIAL_CODE = {
    "log": (
        "loc = e.location\n"
        "{g}['file'] = {{'path': loc.path, 'line': loc.line}} if loc.line "
        "else {{'path': loc.path}}\n"
        "if loc.offset is not None:\n"
        "    {g}['offset'] = loc.offset"
    ),
    "auditor": (
        "x = e.extra\n"
        "if x:\n"
        "    if {g}:\n"
        "        {g}.update(x)\n"
        "    else:\n"
        "        {g} = x"
    ),
    "host": f"if e.{_HOST_ATTR} is None and host is not None:\n    {{g}}['name'] = host",
}


def _generate() -> Callable[[Event, str | None, Mapping[str, Any] | None], dict[str, Any]]:
    """One flat function building the whole document: no recursion, no path walks."""
    lines = ["def event_doc(e, host, tail):", "    d = {}"]
    lines += _gen_group(_TREE, "d", "    ", 0)
    lines += ["    if tail:", "        d.update(tail)", "    return d"]
    scope: dict[str, Any] = {}
    exec("\n".join(lines), scope)  # code built from our own dataclass metadata only
    return scope["event_doc"]  # type: ignore[no-any-return]


event_doc = _generate()
event_doc.__doc__ = """The document of ``event``; its ``auditor`` may be ``event.extra`` itself.

Once serialised, equal to ``to_ecs(event)`` plus ``host.name`` and ``tail``.
"""


def _default(value: Any) -> Any:
    """What orjson cannot or should not render itself, as ``to_ecs`` + :mod:`json` would."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(value)
    return str(value)


def _slow(event: Event, host: str | None, tail: Mapping[str, Any]) -> bytes:
    doc = to_ecs(event)
    if event.host_name is None and host is not None:
        doc.setdefault("host", {})["name"] = host
    doc.update(tail)
    text = _std(doc)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a file name's undecodable byte)
        return dumps(doc, separators=(",", ":")).encode("utf-8")


_dumps = orjson.dumps
_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def event_bytes(event: Event, host: str | None,
                tail: Mapping[str, Any] | None = None) -> bytes:
    """The ECS document of ``event`` as compact UTF-8 JSON (no raw newline).

    ``host`` fills a missing ``host.name`` (None: left out, as ``to_ecs``); ``tail`` adds
    top-level fields.
    """
    try:
        data: bytes = _dumps(event_doc(event, host, tail), _default, _OPTS)
    except orjson.JSONEncodeError:
        return _slow(event, host, tail or {})
    return json_bytes(data)


def event_json(event: Event, host: str | None, tail: Mapping[str, Any] | None = None) -> str:
    """:func:`event_bytes` as text."""
    return event_bytes(event, host, tail).decode("utf-8", "surrogatepass")


def stdlib_event_bytes(event: Event, host: str | None,
                       tail: Mapping[str, Any] | None = None) -> bytes:
    """The reference rendering: ``to_ecs`` and :mod:`json` (what the fast path must equal)."""
    return _slow(event, host, tail or {})


def doc_bytes(doc: Mapping[str, Any]) -> bytes:
    """Any JSON-ready document as compact UTF-8 JSON by orjson (what it refuses: :mod:`json`)."""
    try:
        data: bytes = _dumps(doc, _default, _OPTS)
    except orjson.JSONEncodeError:
        try:
            return _std_any(doc).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: written as text, valid UTF-8
            return dumps(doc, separators=(",", ":")).encode("utf-8")
    return json_bytes(data)


# what orjson refuses in doc_bytes, rendered with the same defaults (datetimes as isoformat)
_std_any = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default).encode
