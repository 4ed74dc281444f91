"""Constants of ``nft list ruleset`` text as nft's JSON holds them.

:func:`scalar` reads one printed value: ``443`` and ``0x00000010`` as integers,
``1h30m`` as seconds, ``192.0.2.0/24`` as a prefix object, ``8000-8080`` and
``192.0.2.5-192.0.2.9`` as range objects, ``established,related`` as a list, and
everything else (names, addresses, ``@set`` references) as the string it is.
:func:`priority` reads a base chain's priority (``filter + 10``, ``dstnat``, ``-150``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from auditor.firewall.nft_layout import STD_PRIOS

_TIME = re.compile(r"(?:\d+(?:ms|[dhms]))+")
_TIME_PART = re.compile(r"(\d+)(ms|[dhms])")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DEC = re.compile(r"\d+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_ADDR = re.compile(r"[0-9A-Fa-f:.]+")
MAX_NUMBER_DIGITS = 40  # an IPv6 address as an integer has 39; longer is not a value


def seconds(text: str) -> int:
    """``2d3h``, ``59m59s992ms`` as whole seconds (nft's JSON drops the milliseconds)."""
    ms = 0
    for n, unit in _TIME_PART.findall(text):
        ms += int(n) if unit == "ms" else int(n) * _UNIT[unit] * 1000
    return ms // 1000


def _address(text: str) -> bool:
    if not _ADDR.fullmatch(text) or ("." not in text and ":" not in text):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _number(text: str) -> int | None:
    if len(text) > MAX_NUMBER_DIGITS:
        return None
    if _DEC.fullmatch(text):
        return int(text)
    if _HEX.fullmatch(text):
        return int(text, 16)
    return None


def scalar(text: str) -> Any:
    """One printed value as nft's JSON has it (see the module's docstring)."""
    if text.startswith("@"):
        return text
    if "," in text:
        return [scalar(p) for p in text.split(",")]
    n = _number(text)
    if n is not None:
        return n
    if _TIME.fullmatch(text) and not text.isdigit():
        return seconds(text)
    if "/" in text:
        addr, _, bits = text.partition("/")
        if _address(addr) and bits.isdigit() and len(bits) <= 3:
            return {"prefix": {"addr": addr, "len": int(bits)}}
    if "-" in text:
        lo, _, hi = text.partition("-")
        nlo, nhi = _number(lo), _number(hi)
        if nlo is not None and nhi is not None:
            return {"range": [nlo, nhi]}
        if _address(lo) and _address(hi):
            return {"range": [lo, hi]}
    if text.startswith("[") and text.endswith("]") and _address(text[1:-1]):
        return text[1:-1]
    return text


def flag_lhs(left: Any) -> bool:
    """True for fields nft compares with an implicit ``in`` (flag sets: ct state, tcp flags)."""
    if not isinstance(left, dict):
        return False
    if "ct" in left:
        return left["ct"].get("key") in ("state", "status", "event")
    if "payload" in left:
        p = left["payload"]
        return bool(p.get("protocol") == "tcp" and p.get("field") == "flags")
    return False


def lists(tokens: list[Any]) -> list[str]:
    """``log flags`` words as nft's JSON lists them: ``tcp sequence,options`` ->
    ["tcp sequence", "tcp options"], ``all`` -> ["all"]."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("tcp", "ip") and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            out += [f"{tok} {x}" for x in (nxt if isinstance(nxt, list) else [nxt])]
            i += 2
        else:
            out.append(str(tok))
            i += 1
    return out


_PRIO = re.compile(r"([a-z]+)(?:\s*([+-])\s*(\d+))?")


def priority(text: str, family: str, hook: str) -> int:
    """A base chain's priority as a number; ValueError when it is neither a number nor a
    standard name (with an offset) for this family and hook."""
    text = text.strip()
    if re.fullmatch(r"-?\d{1,10}", text):
        return int(text)
    m = _PRIO.fullmatch(text)
    if m is None:
        raise ValueError(f"priority {text!r} not understood")
    for name, base, fams, hooks in STD_PRIOS:
        if name == m[1] and family in fams and (hooks is None or hook in hooks):
            off = int(m[3] or 0)
            return base + off if m[2] != "-" else base - off
    raise ValueError(f"priority {text!r} is not a standard name for {family} {hook}")
