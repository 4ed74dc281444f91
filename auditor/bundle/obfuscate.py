"""``--obfuscate``: IP addresses and host names of a bundle replaced by stand-ins, consistently.

Two passes over every file (compressed logs too). The first gathers the
addresses, the networks (``10.0.0.0/8``, nft ``prefix`` objects) and the host
names (the host's own, nginx ``server_name``, ``upstream`` and ``proxy_pass``
hosts). The stand-ins are then laid out as a tree: each network gets a block
inside its parent's block, big enough for what the bundle holds inside it, in
the original order, so containment, equality and order (ranges) survive and a
rule still matches the packets it matched. IPv4 stand-ins come from
192.0.2.0/24 (documentation) or, for more, 198.18.0.0/15 (benchmarking);
IPv6 from 2001:db8::/32. Names become ``hostN`` / ``hostN.example``. Loopback,
unspecified, multicast and link-local addresses stay. The second pass rewrites
every file and path; the mapping is returned for the owner, never written into
the bundle.

Part of the standalone collector: standard library only, Python 3.9.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
from typing import Any, Union

from auditor.bundle.writer import open_compressed, private_dirs, stream_lines

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007 (3.9)
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007 (3.9)
POOLS_V4 = ("192.0.2.0/24", "198.18.0.0/15")
POOLS_V6 = ("2001:db8::/32",)
_V4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
_V6 = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:" + _V4 + r"|[0-9A-Fa-f]{0,4})"
# group 1 the address ("10.0.0.1:8080" is one, "a:10.0.0.1:b" holds none in IPv6), 2 the prefix
_ADDRESS = (
    r"((?<![\w:.])" + _V6 + r"(?![:\w])|(?<![\w.])" + _V4 + r")(?:/(\d{1,3}))?(?!\w|\.\d)"
)
_NOT_INSIDE_NAME = r"(?<![\w\-])(?<![\w\-]\.)"  # "*.img.shop.example" holds "img.shop.example"
_SERVER_NAME = re.compile(r"^\s*server_name\s+([^;]+);", re.M)
_UPSTREAM = re.compile(r"^\s*upstream\s+([\w.\-]+)\s*\{", re.M)
_URL_HOST = re.compile(r"\b(?:proxy|grpc|uwsgi|fastcgi)_pass\s+(?:\w+://)?([\w.\-]+)")
_DIRECTIVE = re.compile(r"^\s*([a-z_]+)\s", re.M)
KEPT_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "kernel", "nginx", "server",
              "default", "unix", "http", "https", "host", "none", "off", "on", "all"}


class ObfuscationError(Exception):
    """The bundle holds more distinct addresses than the stand-in ranges can take."""


def _kept(ip: IPAddress) -> bool:
    if ip.version == 4 and str(ip).split(".")[0] in ("0", "255"):
        return True  # "this network", netmasks, broadcast
    return ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_link_local


def _mapped_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
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
            if not _kept(net.network_address):
                self.nets.add(net)
            if ip == net.network_address:
                return  # a network, not an address (an interface's "10.0.0.5/24" is both)
        if not _kept(ip):
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


class Obfuscator:
    """Both passes: :meth:`gather` every text, then :meth:`rewrite` it."""

    def __init__(self) -> None:
        self.maps = {4: AddressMap(4), 6: AddressMap(6)}
        self.names: dict[str, str] = {}
        self.kept_names = set(KEPT_NAMES)
        self._address = re.compile(_ADDRESS)
        self._pattern: re.Pattern[str] | None = None

    @staticmethod
    def _parse(text: str, prefix: str | None) -> tuple[IPAddress, int | None] | None:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return None
        length = int(prefix) if prefix is not None else None
        if length is not None and length > ip.max_prefixlen:
            return None
        return ip, length

    def gather(self, text: str) -> None:
        for m in self._address.finditer(text):
            got = self._parse(m.group(1), m.group(2))
            if got is not None:
                ip, length = got
                inner = _mapped_v4(ip)
                if inner is not None:
                    self.maps[4].add(inner, None)
                else:
                    self.maps[ip.version].add(ip, length)

    def gather_chunk(self, text: str) -> str:
        """:meth:`gather` for :func:`stream_lines` (which writes what this returns: nothing)."""
        self.gather(text)
        return ""

    def gather_json(self, doc: Any) -> None:
        """nft ``{"prefix": {"addr": .., "len": ..}}`` objects hold networks no text shows."""
        if isinstance(doc, dict):
            pre = doc.get("prefix")
            if isinstance(pre, dict) and isinstance(pre.get("len"), int):
                got = self._parse(str(pre.get("addr")), str(pre["len"]))
                if got is not None:
                    self.maps[got[0].version].add(*got)
                    return
            for key, value in doc.items():
                self.gather(key)
                self.gather_json(value)
        elif isinstance(doc, list):
            for value in doc:
                self.gather_json(value)
        elif isinstance(doc, str):
            self.gather(doc)

    def gather_names(self, host: str | None, nginx_t: str) -> None:
        self.kept_names.update(m.group(1) for m in _DIRECTIVE.finditer(nginx_t))
        found = [host or ""]
        for m in _SERVER_NAME.finditer(nginx_t):
            found += [w.lstrip("*.").rstrip(".") for w in m.group(1).split() if "~" not in w]
        found += [m.group(1) for m in _UPSTREAM.finditer(nginx_t)]
        found += [m.group(1) for m in _URL_HOST.finditer(nginx_t)]
        for name in sorted({n.lower() for n in found}):
            short = len(name) < (2 if name == (host or "").lower() else 3)
            if short or name in self.kept_names or self._parse(name, None) is not None:
                continue
            if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", name) or name.replace(".", "").isdigit():
                continue
            n = len(self.names) + 1
            self.names[name] = f"host{n}.example" if "." in name else f"host{n}"

    def layout(self) -> None:
        for amap in self.maps.values():
            amap.layout()
        longest_first = sorted(self.names, key=len, reverse=True)
        dotted = "|".join(re.escape(n) for n in longest_first if "." in n) or "(?!)"
        single = "|".join(re.escape(n) for n in longest_first if "." not in n) or "(?!)"
        # "www.example.com.access.log" holds a name; "vm.max_map_count" does not hold "vm"
        self._pattern = re.compile(
            _ADDRESS + rf"|{_NOT_INSIDE_NAME}(?i:({dotted}))(?![\w\-])"
            rf"|{_NOT_INSIDE_NAME}(?i:({single}))(?![\w\-]|\.\w)"
        )

    def _sub(self, m: re.Match[str]) -> str:
        if m.group(1) is None:
            return self.names[(m.group(3) or m.group(4)).lower()]
        got = self._parse(m.group(1), m.group(2))
        if got is None:
            return m.group(0)
        ip, length = got
        inner = _mapped_v4(ip)
        if inner is not None:
            return m.group(0) if _kept(inner) else "::ffff:" + self.maps[4].stand_in(inner, None)
        amap = self.maps[ip.version]
        if length is not None and length < ip.max_prefixlen:
            if not _kept(ipaddress.ip_network(f"{ip}/{length}", strict=False).network_address):
                return amap.stand_in(ip, length)
            return m.group(0) if _kept(ip) else f"{amap.stand_in(ip, None)}/{length}"
        return m.group(0) if _kept(ip) else amap.stand_in(ip, length)

    def rewrite(self, text: str) -> str:
        assert self._pattern is not None, "layout() first"
        return self._pattern.sub(self._sub, text)

    def rewrite_json(self, doc: Any) -> Any:
        if isinstance(doc, dict):
            pre = doc.get("prefix")
            if isinstance(pre, dict) and isinstance(pre.get("len"), int):
                got = self.rewrite(f"{pre.get('addr')}/{pre['len']}").split("/")
                if len(got) == 2 and got[1].isdigit():
                    return {"prefix": {**pre, "addr": got[0], "len": int(got[1])}}
            return {self.rewrite(k): self.rewrite_json(v) for k, v in doc.items()}
        if isinstance(doc, list):
            return [self.rewrite_json(v) for v in doc]
        return self.rewrite(doc) if isinstance(doc, str) else doc

    def mapping(self) -> dict[str, Any]:
        addresses: dict[str, str] = {}
        networks: dict[str, str] = {}
        for amap in self.maps.values():
            make = ipaddress.IPv4Address if amap.version == 4 else ipaddress.IPv6Address
            for host in sorted(amap.hosts):
                addresses[str(make(host))] = str(make(amap.host_of[host]))
            for net in sorted(amap.nets, key=lambda n: (int(n.network_address), n.prefixlen)):
                base, length = amap.net_of[net]
                networks[str(net)] = f"{make(base)}/{length}"
        return {"addresses": addresses, "networks": networks, "names": dict(self.names)}


def _files(root: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def obfuscate_dir(root: str) -> dict[str, Any]:
    """Obfuscate the bundle directory ``root`` in place; returns the owner's mapping."""
    ob = Obfuscator()
    files = _files(root)
    manifest = _read_json(os.path.join(root, "manifest.json")) or {}
    host = manifest.get("host", {}).get("name") if isinstance(manifest, dict) else None
    nginx_t = ""
    if os.path.isfile(os.path.join(root, "nginx", "nginx-T.txt")):
        with open(os.path.join(root, "nginx", "nginx-T.txt"), encoding="utf-8",
                  errors="replace") as fh:
            nginx_t = fh.read()
    ob.gather_names(host, nginx_t)
    docs: dict[str, Any] = {}
    for rel in files:
        path = os.path.join(root, rel)
        doc = _read_json(path) if rel.endswith(".json") else None
        if doc is not None:
            docs[rel] = doc
            ob.gather_json(doc)
        else:
            with open(path, "rb") as raw:
                stream_lines(open_compressed(raw, rel, "rb"), io.BytesIO(), ob.gather_chunk)
        ob.gather(rel)
    ob.layout()
    for rel in files:
        path = os.path.join(root, rel)
        new_rel = ob.rewrite(rel)
        new_path = os.path.join(root, new_rel)
        tmp = path + ".obfuscating"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw_out:
            if rel in docs:
                raw_out.write(json.dumps(ob.rewrite_json(docs[rel]), indent=1).encode("utf-8"))
            else:
                out = open_compressed(raw_out, rel, "wb")
                with open(path, "rb") as raw:
                    stream_lines(open_compressed(raw, rel, "rb"), out, ob.rewrite)
                if out is not raw_out:
                    out.close()
        os.unlink(path)
        private_dirs(os.path.dirname(new_path))
        os.replace(tmp, new_path)
    mapping = ob.mapping()
    manifest = _read_json(os.path.join(root, "manifest.json"))
    if isinstance(manifest, dict):
        manifest["obfuscated"] = {
            "addresses": len(mapping["addresses"]),
            "networks": len(mapping["networks"]),
            "names": len(mapping["names"]),
            "mapping": "kept by the owner, outside the bundle",
        }
        tmp = os.path.join(root, "manifest.json.obfuscating")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            json.dump(manifest, fh, indent=1)
        os.replace(tmp, os.path.join(root, "manifest.json"))
    return mapping

