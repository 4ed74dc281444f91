"""Compile iptables matches into fast checks, and say which ones cannot be decided.

:func:`compile_rule` turns an :class:`~auditor.firewall.iptables_save.IptRule` into a
:class:`CompiledRule`: a tuple of checks ``(packet, env) -> bool`` that must all hold,
the human conditions of the matches that depend on kernel state (connlimit, hashlimit,
recent, limit, quota, statistic), and the reasons for matches auditor does not
evaluate. A check raises :class:`Undecidable` when the packet lacks what it needs
(e.g. an interface was not given). It also extracts index keys (exact destination,
source, destination ports) so that a chain need not be scanned rule by rule, and
``needs``: what a packet must carry for the rule's checks to be decidable, so that the
index still offers the rule to a packet that lacks it (a full scan would report it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from auditor.firewall.ipset import IpSets, SetUnsupported
from auditor.firewall.iptables_checks import (
    Check,
    _any_of,
    _length_check,
    _mark_check,
    _net_check,
    _pkttype_check,
    _pnum,
    _proto_check,
    _range_check,
    describe_condition,
    proto_number,
)
from auditor.firewall.iptables_save import IptRule, Match, Option
from auditor.firewall.model import Packet, TraceEnv

ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "echo-request": 8,
              "time-exceeded": 11, "parameter-problem": 12, "redirect": 5,
              "router-advertisement": 9, "router-solicitation": 10, "source-quench": 4,
              "timestamp-request": 13, "timestamp-reply": 14}
ICMP6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
               "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
               "router-solicitation": 133, "router-advertisement": 134,
               "neighbour-solicitation": 135, "neighbor-solicitation": 135,
               "neighbour-advertisement": 136, "neighbor-advertisement": 136}
CONDITIONAL = {"connlimit", "hashlimit", "recent", "limit", "quota", "statistic"}
MAX_INDEXED_PORTS = 64


class Undecidable(Exception):
    """This packet does not carry what the match needs; the rule goes to not_evaluated."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: IptRule
    checks: tuple[Check, ...]
    conditions: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    dst_host: str | None = None
    src_host: str | None = None
    dports: frozenset[int] | None = None
    # packet fields whose absence makes a check undecidable: "iif", "oif", "sport",
    # "dport", "icmp", "ctdir" (a non-new packet); "*" when any packet may be undecidable
    needs: frozenset[str] = frozenset()
    # what the target does, read at load: a NatTo or MarkOp (auditor.firewall.iptables_targets)
    effect: object = None


def _neg(check: Check, negated: bool) -> Check:
    if not negated:
        return check
    return lambda p, e: not check(p, e)


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def _ports(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        lo, sep, hi = part.partition(":")
        a = int(lo) if lo else 0
        b = (int(hi) if hi else 65535) if sep else a
        out.append((a, b))
    return out


def _port_check(which: str, ranges: list[tuple[int, int]]) -> Check:
    def check(p: Packet, e: TraceEnv) -> bool:
        port = p.sport if which == "s" else p.dport
        if port is None:
            raise Undecidable(f"packet has no {'source' if which == 's' else 'destination'} port")
        return any(a <= port <= b for a, b in ranges)

    return check


def _iface_check(which: str, name: str) -> Check:
    wild = name.endswith("+")
    stem = name[:-1] if wild else name

    def check(p: Packet, e: TraceEnv) -> bool:
        val = p.iif if which == "i" else p.oif
        if val is None:
            raise Undecidable(f"packet has no {'input' if which == 'i' else 'output'} interface"
                              f" (rule wants {name}; give --in/--out)")
        return val.startswith(stem) if wild else val == stem

    return check


def _flags(text: str) -> frozenset[str]:
    if text == "ALL":
        return frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH"})
    if text == "NONE":
        return frozenset()
    return frozenset(text.split(","))


def _tcp_flags_check(mask: frozenset[str], comp: frozenset[str]) -> Check:
    return lambda p, e: (p.tcp_flags & mask) == comp


def _states_check(states: set[str]) -> Check:
    def check(p: Packet, e: TraceEnv) -> bool:
        if p.ct_state in states:
            return True
        return ("snat" in states and "SNAT" in p.ct_status) or (
            "dnat" in states and "DNAT" in p.ct_status)

    return check


class _Compiler:
    """Builds one CompiledRule; collects conditions, unknowns and index keys."""

    def __init__(self, rule: IptRule, family: int, ipsets: IpSets | None) -> None:
        self.rule, self.family, self.ipsets = rule, family, ipsets
        self.checks: list[Check] = []
        self.conditions: list[str] = []
        self.unknown: list[str] = []
        self.dst_host: str | None = None
        self.src_host: str | None = None
        self.dports: frozenset[int] | None = None
        self.needs: set[str] = set()

    def build(self) -> CompiledRule:
        for m in self.rule.matches:
            try:
                self.match(m)
            except (ValueError, IndexError) as exc:
                self.unknown.append(f"-m {m.name or 'basic'}: cannot read options ({exc})")
        return CompiledRule(self.rule, tuple(self.checks), tuple(self.conditions),
                            tuple(self.unknown), self.dst_host, self.src_host, self.dports,
                            frozenset(self.needs))

    def add(self, check: Check, negated: bool = False) -> None:
        self.checks.append(_neg(check, negated))

    def match(self, m: Match) -> None:
        name = m.name
        if name == "":
            for o in m.options:
                self.basic(o)
        elif name in ("tcp", "udp", "udplite", "sctp", "dccp"):
            for o in m.options:
                self.l4(name, o)
        elif name == "multiport":
            for o in m.options:
                which = "s" if o.name in ("sports", "source-ports") else "d"
                if o.name in ("ports",):
                    ranges = _ports(o.arg)
                    self.needs.update(("sport", "dport"))
                    self.add(_any_of(_port_check("s", ranges), _port_check("d", ranges)),
                             o.negated)
                    continue
                if o.name not in ("sports", "dports", "source-ports", "destination-ports"):
                    raise ValueError(f"--{o.name}")
                ranges = _ports(o.arg)
                self.needs.add(which + "port")
                self.add(_port_check(which, ranges), o.negated)
                if which == "d" and not o.negated:
                    self._index_ports(ranges)
        elif name in ("conntrack", "state"):
            for o in m.options:
                self.conntrack(o)
        elif name in ("icmp", "icmp6"):
            for o in m.options:
                self.icmp(name, o)
        elif name == "comment":
            pass
        elif name == "mark":
            for o in m.options:
                val, _, mask = o.arg.partition("/")
                self.add(_mark_check(int(val, 0), int(mask, 0) if mask else 0xFFFFFFFF),
                         o.negated)
        elif name == "addrtype":
            for o in m.options:
                self.addrtype(o)
        elif name == "set":
            for o in m.options:
                self.ipset(o)
        elif name == "iprange":
            for o in m.options:
                lo_s, _, hi_s = o.arg.partition("-")
                lo, hi = ipaddress.ip_address(lo_s), ipaddress.ip_address(hi_s or lo_s)
                self.add(_range_check(o.name == "src-range", lo, hi), o.negated)
        elif name == "length":
            for o in m.options:
                ((lo_n, hi_n),) = _ports(o.arg)
                self.add(_length_check(lo_n, hi_n), o.negated)
        elif name == "pkttype":
            for o in m.options:
                self.add(_pkttype_check(o.arg.lower()), o.negated)
        elif name == "recent" and any(o.name == "set" for o in m.options):
            pass  # --set always matches (it records the source)
        elif name in CONDITIONAL:
            self.conditions.append(describe_condition(name, m.options, self.rule))
        else:
            self.unknown.append(f"match -m {name} not evaluated")

    def basic(self, o: Option) -> None:
        if o.name in ("s", "d"):
            net = _net(o.arg)
            if net.version != self.family:
                raise ValueError(f"address {o.arg} in an IPv{self.family} table")
            if net.num_addresses == 1 and not o.negated:
                host = str(net.network_address)
                if o.name == "d":
                    self.dst_host = host
                else:
                    self.src_host = host
            if net.prefixlen == 0:
                if o.negated:
                    self.add(lambda p, e: False)
                return
            self.add(_net_check(o.name == "s", net), o.negated)
        elif o.name == "p":
            if o.arg.lower() in ("all", "0"):
                if o.negated:
                    self.add(lambda p, e: False)
                return
            num = proto_number(o.arg)
            self.add(_proto_check(num), o.negated)
        elif o.name in ("i", "o"):
            self.needs.add(o.name + "if")
            self.add(_iface_check(o.name, o.arg), o.negated)
        elif o.name == "f":
            self.add(lambda p, e: False, o.negated)  # traced packets are never fragments

    def l4(self, name: str, o: Option) -> None:
        if o.name in ("sport", "source-port", "dport", "destination-port"):
            which = "s" if o.name.startswith("s") else "d"
            ranges = _ports(o.arg)
            self.needs.add(which + "port")
            self.add(_port_check(which, ranges), o.negated)
            if which == "d" and not o.negated:
                self._index_ports(ranges)
        elif name == "tcp" and o.name == "tcp-flags":
            self.add(_tcp_flags_check(_flags(o.args[0]), _flags(o.args[1])), o.negated)
        elif name == "tcp" and o.name == "syn":
            self.add(_tcp_flags_check(frozenset({"SYN", "RST", "ACK", "FIN"}),
                                      frozenset({"SYN"})), o.negated)
        else:
            self.unknown.append(f"-m {name} --{o.name} not evaluated")

    def _index_ports(self, ranges: list[tuple[int, int]]) -> None:
        if sum(b - a + 1 for a, b in ranges) <= MAX_INDEXED_PORTS:
            ports = frozenset(p for a, b in ranges for p in range(a, b + 1))
            self.dports = ports if self.dports is None else self.dports & ports

    def conntrack(self, o: Option) -> None:
        if o.name in ("ctstate", "state"):
            states = {s.lower() for s in o.arg.split(",")}
            self.add(_states_check(states), o.negated)
        elif o.name == "ctstatus":
            want = {s.upper() for s in o.arg.split(",")}
            none = "NONE" in want

            def status(p: Packet, e: TraceEnv, want: set[str] = want) -> bool:
                return bool(p.ct_status & want) or (none and not p.ct_status)

            self.add(status, o.negated)
        elif o.name == "ctdir":
            def ctdir(p: Packet, e: TraceEnv, d: str = o.arg.upper()) -> bool:
                if p.ct_state != "new":
                    raise Undecidable("conntrack direction of a non-new packet is unknown")
                return d == "ORIGINAL"

            self.needs.add("ctdir")
            self.add(ctdir, o.negated)
        elif o.name == "ctproto":
            num = proto_number(o.arg)
            self.add(_proto_check(num), o.negated)
        else:
            self.unknown.append(f"-m conntrack --{o.name} not evaluated")

    def icmp(self, name: str, o: Option) -> None:
        names = ICMP6_TYPES if name == "icmp6" else ICMP_TYPES
        if o.arg == "any":
            if o.negated:
                self.add(lambda p, e: False)
            return
        typ, _, code = o.arg.partition("/")
        num = int(typ) if typ.isdigit() else names.get(typ)
        if num is None or code:
            self.unknown.append(f"-m {name} --{o.name} {o.arg} not evaluated")
            return

        def check(p: Packet, e: TraceEnv, n: int = num) -> bool:
            if p.icmp_type is None:
                raise Undecidable("packet has no icmp type")
            return p.icmp_type == n

        self.needs.add("icmp")
        self.add(check, o.negated)

    def addrtype(self, o: Option) -> None:
        if o.name in ("limit-iface-in", "limit-iface-out"):
            self.unknown.append(f"-m addrtype --{o.name} not evaluated")
            return
        which = "src" if o.name == "src-type" else "dst"
        types = {t.upper() for t in o.arg.split(",")}
        if not types <= {"LOCAL", "UNICAST", "MULTICAST", "BROADCAST"}:
            self.unknown.append(f"-m addrtype type {o.arg} not evaluated")
            return

        def check(p: Packet, e: TraceEnv, which: str = which, types: set[str] = types) -> bool:
            addr = p.src if which == "src" else p.dst
            ip = ipaddress.ip_address(addr)
            if ip.is_multicast:
                kind = "MULTICAST"
            elif addr == "255.255.255.255":
                kind = "BROADCAST"
            elif e.is_local(addr, p, which):
                kind = "LOCAL"
            else:
                kind = "UNICAST"
            return kind in types

        self.add(check, o.negated)

    def ipset(self, o: Option) -> None:
        if o.name not in ("match-set", "set"):
            if o.name in ("return-nomatch", "update-counters", "update-subcounters",
                          "no-update-counters", "no-update-subcounters"):
                return
            self.unknown.append(f"-m set --{o.name} not evaluated")
            return
        name, dirs = o.args[0], o.args[1].split(",")
        sets = self.ipsets.sets if self.ipsets else {}
        if name not in sets:
            self.unknown.append(f"ipset {name!r} contents not known (give ipset save output)")
            return
        if self.ipsets and name in self.ipsets.unsupported:
            self.unknown.append(self.ipsets.unsupported[name])
            return
        s = sets[name]

        def check(p: Packet, e: TraceEnv) -> bool:
            vals: list[object] = []
            for dim, d in zip(s.dims or ("ip",) * len(dirs), dirs, strict=False):
                if dim == "port":
                    port = p.sport if d == "src" else p.dport
                    if port is None:
                        raise Undecidable("packet has no port for the set lookup")
                    vals.append((_pnum(p), port))
                else:
                    vals.append(p.src_ip if d == "src" else p.dst_ip)
            try:
                return s.contains(vals, sets)
            except SetUnsupported as exc:
                raise Undecidable(str(exc)) from None

        self.needs.add("*")  # port dimensions, or a member set auditor cannot read
        self.add(check, o.negated)


def compile_rule(rule: IptRule, family: int, ipsets: IpSets | None) -> CompiledRule:
    return _Compiler(rule, family, ipsets).build()
