"""Validation of one cause file's items and remedy against the vocabulary.

Used by :mod:`auditor.correlate.catalog`; each function yields messages, the loader adds
the ``file:line`` of the item they concern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from auditor.vocabulary import ACTIONS, FACTS, PLACEHOLDERS

KINDS = ("event", "counter", "limit", "rule", "fact", "query")
ITEM_KEYS = {"label", "weight", "anchor", "risk", *KINDS}
_MATCHER_KEYS: Mapping[str, set[str]] = {
    "event": {"actions", "near", "min_count", "without_syn"},
    "counter": {"names", "min_delta", "counts"},
    "limit": {"names", "min_usage", "equals", "at_least", "zones_from"},
    "rule": {"targets", "reject_with", "matches", "not_matches"},
    "fact": {"names"},
    "query": set(),
}
FIELD = re.compile(r"\{([a-z_]+)\}")
SECTION = re.compile(r"\[\[(.*?)\]\]", re.S)  # an optional section of a remedy


def check_item(item: Any) -> Iterable[str]:
    """Problems of one evidence item: keys, kind, weight, flags, names, patterns."""
    if not isinstance(item, dict):
        yield "each evidence item must be a mapping"
        return
    for key in sorted(set(item) - ITEM_KEYS):
        yield f"unknown key {key!r}"
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        yield f"needs exactly one of {', '.join(KINDS)} (found {len(kinds)})"
        return
    weight = item.get("weight")
    if not isinstance(weight, int | float) or isinstance(weight, bool) or not 0 < weight <= 1:
        yield "weight must be a number in (0, 1]"
    for flag in ("anchor", "risk"):
        if not isinstance(item.get(flag, False), bool):
            yield f"{flag} must be true or false"
    if item.get("risk") and kinds[0] not in ("counter", "limit", "fact"):
        yield "risk: only counter, limit and fact evidence can show a risk without logs"
    kind = kinds[0]
    params = item[kind] or {}
    if not isinstance(params, dict):
        yield f"{kind} must be a mapping"
        return
    for key in sorted(set(params) - _MATCHER_KEYS[kind]):
        allowed = ", ".join(sorted(_MATCHER_KEYS[kind])) or "none"
        yield f"{kind}: unknown key {key!r} (allowed: {allowed})"
    need = {
        "event": "actions",
        "counter": "names",
        "limit": "names",
        "fact": "names",
    }
    if kind in need and not params.get(need[kind]):
        yield f"{kind}: {need[kind]} must list at least one value"
    yield from _unknown_names(kind, params)
    for key in ("matches", "not_matches"):
        for pattern in params.get(key) or ():
            try:
                re.compile(str(pattern))
            except re.error as exc:
                yield f"{kind}: bad regular expression {pattern!r}: {exc}"
    usage = params.get("min_usage")
    if usage is not None and (not isinstance(usage, int | float) or not 0 < usage <= 1.5):
        yield f"{kind}: min_usage must be a fraction such as 0.9"


def _unknown_names(kind: str, params: Mapping[str, Any]) -> Iterable[str]:
    """References to actions or facts that the vocabulary does not know."""
    checks: tuple[tuple[str, Mapping[str, object], str], ...] = (
        ("actions", ACTIONS, "action"),
        ("zones_from", ACTIONS, "action"),
    )
    if kind == "fact":
        checks = (("names", FACTS, "fact"),)
    elif kind != "event" and kind != "limit":
        return
    for key, known, what in checks:
        value = params.get(key) or ()
        for name in value if isinstance(value, list | tuple) else [value]:
            if str(name) not in known:
                yield f"{kind}: unknown {what} {name!r} (not in auditor.vocabulary)"



def remedy_problems(remedy: str) -> Iterable[str]:
    """Unknown placeholders, and placeholders without a fallback outside ``[[...]]``."""
    for name in FIELD.findall(remedy):
        if name not in PLACEHOLDERS:
            yield f"unknown placeholder {{{name}}} in remedy"
    outside = SECTION.sub("", remedy)
    if "[[" in outside or "]]" in outside:
        yield "remedy: an optional section [[...]] is not closed (or nested)"
    for name in FIELD.findall(outside):
        spec = PLACEHOLDERS.get(name)
        if spec is not None and not spec.always and spec.fallback is None:
            yield (
                f"remedy: {{{name}}} may be unknown; put it in an optional section [[...]]"
            )

