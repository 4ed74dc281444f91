"""ipset contents from ``ipset save`` or ``ipset list`` output, or live, for ``-m set``.

``ipset save`` prints ``create NAME TYPE [options]`` then ``add NAME ENTRY [options]``;
``ipset list`` prints ``Name:``/``Type:`` headers then ``Members:`` one per line. Both
are read into :class:`IpSet` s that answer :meth:`IpSet.contains` for the values a
``--match-set NAME src,dst`` selects from a packet. Reading is read-only.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from auditor.models import Location, ParseIssue

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
PROTO_NUM = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58, "udplite": 136}
SUPPORTED_DIMS = {"ip", "net", "port"}


class SetUnsupported(ValueError):
    """A set type or entry auditor cannot evaluate (the rule then goes to not_evaluated)."""


@dataclass
class IpSet:
    """One set: its type dims ("ip", "net", "port", ...), entries as ranges per dim."""

    name: str
    type: str  # e.g. "hash:net,port"
    family: int = 4
    entries: list[tuple[tuple[object, ...], bool]] = field(default_factory=list)  # (dims, nomatch)
    members: list[str] = field(default_factory=list)  # sub-set names of list:set
    location: Location | None = None
    exact: set[tuple[object, ...]] = field(default_factory=set)  # fast path: single ip/port

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.type.split(":", 1)[1].split(",")) if ":" in self.type else ()

    def add(self, entry: str, nomatch: bool = False) -> None:
        dims = self.dims
        parts = entry.split(",")
        if self.type.startswith("list:"):
            self.members.append(entry)
            return
        if len(parts) != len(dims) or not set(dims) <= SUPPORTED_DIMS:
            raise SetUnsupported(f"set type {self.type} entry {entry!r} not supported")
        values: list[object] = []
        single = True
        for dim, part in zip(dims, parts, strict=True):
            value = _parse_dim(dim, part)
            single = single and _is_single(value)
            values.append(value)
        if single and not nomatch:
            self.exact.add(tuple(_single_key(v) for v in values))
        else:
            self.entries.append((tuple(values), nomatch))

    def contains(self, values: Sequence[object], sets: dict[str, IpSet] | None = None) -> bool:
        """``values``: one per dim, an ip address object or a (proto, port) pair."""
        if self.type.startswith("list:"):
            return any(s in (sets or {}) and (sets or {})[s].contains(values, sets)
                       for s in self.members)
        dims = self.dims
        if not set(dims) <= SUPPORTED_DIMS:
            raise SetUnsupported(f"set type {self.type} not supported")
        vals = list(values[: len(dims)])
        if len(vals) < len(dims):
            raise SetUnsupported(f"set {self.name} has {len(dims)} dims, rule gives {len(vals)}")
        hit = False
        for dimvals, nomatch in self.entries:
            if all(_dim_has(d, v) for d, v in zip(dimvals, vals, strict=True)):
                if nomatch:
                    return False
                hit = True
        if hit:
            return True
        return tuple(vals) in self.exact


def _is_single(value: object) -> bool:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value.num_addresses == 1
    if isinstance(value, tuple) and len(value) == 3 and value[0] != "range":
        return bool(value[1] == value[2])
    return False


def _single_key(value: object) -> object:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value.network_address
    assert isinstance(value, tuple)
    return (value[0], value[1])


def _parse_dim(dim: str, text: str) -> object:
    if dim in ("ip", "net"):
        if "-" in text:
            a, b = text.split("-", 1)
            return ("range", ipaddress.ip_address(a), ipaddress.ip_address(b))
        return ipaddress.ip_network(text, strict=False)
    proto, _, port = text.rpartition(":")
    proto = proto or "tcp"
    lo_s, _, hi_s = port.partition("-")
    lo = int(lo_s) if lo_s.isdigit() else _service(lo_s)
    hi = int(hi_s) if hi_s.isdigit() else (_service(hi_s) if hi_s else lo)
    return (PROTO_NUM.get(proto, -1), lo, hi)


def _service(name: str) -> int:
    import socket

    try:
        return socket.getservbyname(name)
    except OSError:
        raise SetUnsupported(f"unknown service name {name!r}") from None


def _dim_has(dimval: object, value: object) -> bool:
    if isinstance(dimval, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address) and (
            value.version == dimval.version and value in dimval)
    assert isinstance(dimval, tuple)
    if dimval[0] == "range":
        return isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address) and (
            value.version == dimval[1].version and dimval[1] <= value <= dimval[2])
    if not isinstance(value, tuple):
        return False
    return bool(value[0] == dimval[0] and dimval[1] <= value[1] <= dimval[2])


@dataclass
class IpSets:
    """All sets read, and the lines that could not be understood."""

    sets: dict[str, IpSet] = field(default_factory=dict)
    issues: list[ParseIssue] = field(default_factory=list)
    unsupported: dict[str, str] = field(default_factory=dict)  # set name -> reason


def parse_ipsets(text: str, origin: str) -> IpSets:
    """Read ``ipset save`` or ``ipset list`` output (recognised by content)."""
    out = IpSets()
    current: IpSet | None = None
    in_members = False
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        loc = Location(origin, no)
        if not line or line.startswith("#"):
            continue
        words = line.split()
        try:
            if words[0] == "create" and len(words) >= 3:
                fam = 6 if "inet6" in words[3:] else 4
                out.sets[words[1]] = IpSet(words[1], words[2], fam, location=loc)
            elif words[0] == "add" and len(words) >= 3:
                s = out.sets.get(words[1])
                if s is None:
                    raise ValueError(f"add to undeclared set {words[1]!r}")
                _add(out, s, words[2], "nomatch" in words[3:])
            elif line.startswith("Name:"):
                current = out.sets[words[1]] = IpSet(words[1], "", location=loc)
                in_members = False
            elif line.startswith("Type:") and current is not None:
                current.type = words[1]
            elif line.startswith("Header:") and current is not None:
                current.family = 6 if "inet6" in words else 4
            elif line.startswith("Members:"):
                in_members = True
            elif in_members and current is not None:
                _add(out, current, words[0], "nomatch" in words[1:])
            elif ":" in words[0] and not in_members:
                continue  # other ipset list header lines (Revision:, References:, ...)
            else:
                raise ValueError("not ipset save/list syntax")
        except (ValueError, IndexError) as exc:
            out.issues.append(ParseIssue(loc, "ipset", str(exc), line[:200]))
    return out


def _add(out: IpSets, s: IpSet, entry: str, nomatch: bool) -> None:
    try:
        s.add(entry, nomatch)
    except SetUnsupported as exc:
        out.unsupported.setdefault(s.name, str(exc))


def read_live_ipsets() -> tuple[IpSets | None, str | None]:
    """``ipset save`` on this host: (sets, None) or (None, why it could not be read)."""
    exe = shutil.which("ipset")
    if exe is None:
        return None, "ipset: binary not found"
    try:
        proc = subprocess.run([exe, "save"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"ipset save: {exc}"
    if proc.returncode != 0:
        return None, f"ipset save: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}"
    return parse_ipsets(proc.stdout, "ipset save"), None
