"""Stand-in addresses for ``--obfuscate``: a layout that keeps what a diagnosis relies on.

Every network and address a bundle holds becomes a node of a tree (an address
below the smallest network holding it); each node gets an aligned block inside
its parent's block, big enough for its children and in their original order.
So a stand-in address is inside a stand-in network exactly when the original
was, equal addresses stay equal and order (hence ranges) is kept. IPv4 blocks
come from 192.0.2.0/24 (documentation) or, for more, 198.18.0.0/15
(benchmarking); IPv6 from 2001:db8::/32.

Part of the standalone collector: standard library only, Python 3.9.
"""

from __future__ import annotations

import ipaddress
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007 (3.9)
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007 (3.9)
POOLS_V4 = ("192.0.2.0/24", "198.18.0.0/15")
POOLS_V6 = ("2001:db8::/32",)


class ObfuscationError(Exception):
    """The bundle holds more distinct addresses than the stand-in ranges can take."""


def kept_address(ip: IPAddress) -> bool:
    """Addresses that stay as they are: loopback, unspecified, multicast, link-local, 0/8, 255/8."""
    if ip.version == 4 and str(ip).split(".")[0] in ("0", "255"):
        return True  # "this network", netmasks, broadcast
    return ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_link_local


def mapped_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None


class _Node:
    """An original network (or a single address) and the stand-in block laid out for it."""

    def __init__(self, net: Network, leaf: bool) -> None:
        self.net = net
        self.leaf = leaf
        self.children: list[_Node] = []
        self.size = 1
        self.base = 0

    def measure(self) -> int:
        offset = 0 if self.leaf else 1  # a network's own first address keeps offset 0
        for child in self.children:
            size = child.measure()
            offset = -(-offset // size) * size + size
        self.size = 1 if self.leaf else 1 << max(offset - 1, 0).bit_length()
        return self.size

    def place(self, base: int) -> None:
        self.base = base
        offset = 0 if self.leaf else 1
        for child in self.children:
            offset = -(-offset // child.size) * child.size
            child.place(base + offset)
            offset += child.size


class AddressMap:
    """Gathers addresses and networks of one family, then lays out their stand-ins."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.nets: set[Network] = set()
        self.hosts: set[int] = set()
        self.host_of: dict[int, int] = {}
        self.net_of: dict[Network, tuple[int, int]] = {}

    def add(self, ip: IPAddress, prefix: int | None) -> None:
        if prefix is not None and prefix < ip.max_prefixlen:
            net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
            if not kept_address(net.network_address):
                self.nets.add(net)
            if ip == net.network_address:
                return  # a network, not an address (an interface's "10.0.0.5/24" is both)
        if not kept_address(ip):
            self.hosts.add(int(ip))

    def layout(self) -> None:
        bits = 32 if self.version == 4 else 128
        bases = {int(n.network_address) for n in self.nets}
        nodes = [_Node(n, False) for n in self.nets] + [
            _Node(ipaddress.ip_network((h, bits)), True) for h in self.hosts if h not in bases
        ]
        nodes.sort(key=lambda n: (int(n.net.network_address), n.net.prefixlen, n.leaf))
        top: list[_Node] = []
        stack: list[_Node] = []
        for node in nodes:
            while stack and not node.net.subnet_of(stack[-1].net):  # type: ignore[arg-type]
                stack.pop()
            (stack[-1].children if stack else top).append(node)
            if not node.leaf:
                stack.append(node)
        for pool_text in POOLS_V4 if self.version == 4 else POOLS_V6:
            pool = ipaddress.ip_network(pool_text)
            root = _Node(pool, False)
            root.children = top
            if root.measure() <= pool.num_addresses:
                root.place(int(pool.network_address))
                break
        else:
            raise ObfuscationError(f"too many distinct IPv{self.version} addresses to obfuscate")
        for node in nodes:
            if node.leaf:
                self.host_of[int(node.net.network_address)] = node.base
            else:
                self.net_of[node.net] = (node.base, bits - (node.size.bit_length() - 1))
        for net in sorted(self.nets, key=lambda n: n.prefixlen):  # innermost network wins
            self.host_of[int(net.network_address)] = self.net_of[net][0]
        for host in self.hosts:
            if host not in self.host_of:
                raise ObfuscationError(f"address {host} left out of the layout")

    def stand_in(self, ip: IPAddress, prefix: int | None) -> str:
        make = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        if prefix is None or prefix >= ip.max_prefixlen:
            new = str(make(self.host_of[int(ip)]))
            return new if prefix is None else f"{new}/{prefix}"
        net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
        base, length = self.net_of[net]
        addr = base if int(ip) == int(net.network_address) else self.host_of.get(int(ip), base)
        return f"{make(addr)}/{length}"
