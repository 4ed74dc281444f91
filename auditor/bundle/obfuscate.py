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
from typing import Any

from auditor.bundle.redact import ASCII_LOWER
from auditor.bundle.standins import (
    AddressMap,
    IPAddress,
    kept_address,
    mapped_v4,
)
from auditor.bundle.writer import open_compressed, private_dirs, stream_lines

_V4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
_H = "[0-9A-Fa-f]"
# all eight groups, or "::" somewhere (so that "10:00:00" and MAC addresses are not candidates)
_V6 = (
    rf"(?:{_H}{{1,4}}:){{7}}{_H}{{1,4}}"
    rf"|{_H}{{0,4}}(?::{_H}{{1,4}}){{0,6}}::(?:{_H}{{1,4}}:){{0,6}}(?:{_V4}|{_H}{{1,4}})?"
)
# group 1 the address ("10.0.0.1:8080" is one, "a:10.0.0.1:b" holds none in IPv6), 2 the prefix
_ADDRESS = (
    r"((?<![\w:.])(?:" + _V6 + r")(?![:\w])|(?<![\w.])" + _V4 + r")(?:/(\d{1,3}))?(?!\w|\.\d)"
)
CACHE_LIMIT = 200_000  # tokens remembered (address:port pairs are many); past it, forgotten
# Runs of address characters holding a "." or ":": the regex engine skips the rest fast,
# and only these runs meet _ADDRESS.
_CANDIDATE = re.compile(r"[0-9A-Fa-f:]+[.:][0-9A-Fa-f:.]*(?:/\d{1,3})?")
_SERVER_NAME = re.compile(r"^\s*server_name\s+([^;]+);", re.M)
_UPSTREAM = re.compile(r"^\s*upstream\s+([\w.\-]+)\s*\{", re.M)
_URL_HOST = re.compile(r"\b(?:proxy|grpc|uwsgi|fastcgi)_pass\s+(?:\w+://)?([\w.\-]+)")
_DIRECTIVE = re.compile(r"^\s*([a-z_]+)\s", re.M)
KEPT_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "kernel", "nginx", "server",
              "default", "unix", "http", "https", "host", "none", "off", "on", "all"}


class Obfuscator:
    """Both passes: :meth:`gather` every text, then :meth:`rewrite` it."""

    def __init__(self) -> None:
        self.maps = {4: AddressMap(4), 6: AddressMap(6)}
        self.names: dict[str, str] = {}
        self.kept_names = set(KEPT_NAMES)
        self._address = re.compile(_ADDRESS)
        self._seen: set[str] = set()  # tokens gathered already
        self._done: dict[str, str] = {}  # token -> what replaces it

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

    @staticmethod
    def _word_char(text: str, i: int) -> bool:
        return 0 <= i < len(text) and (text[i].isalnum() or text[i] in "_-")

    def _runs(self, text: str) -> list[re.Match[str]]:
        """Candidate runs that stand alone (not inside a word, nor after a dot)."""
        return [
            m for m in _CANDIDATE.finditer(text)
            if not self._word_char(text, m.start() - 1) and text[m.start() - 1 : m.start()] != "."
            and not self._word_char(text, m.end())
        ]

    def gather(self, text: str) -> None:
        for run in self._runs(text):
            if run.group(0) in self._seen:
                continue
            if len(self._seen) > CACHE_LIMIT:
                self._seen.clear()
            self._seen.add(run.group(0))
            for m in self._address.finditer(run.group(0)):
                got = self._parse(m.group(1), m.group(2))
                if got is None:
                    continue
                ip, length = got
                inner = mapped_v4(ip)
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

    def _sub(self, m: re.Match[str]) -> str:
        got = self._parse(m.group(1), m.group(2))
        if got is None:
            return m.group(0)
        ip, length = got
        inner = mapped_v4(ip)
        if inner is not None:
            if kept_address(inner):
                return m.group(0)
            return "::ffff:" + self.maps[4].stand_in(inner, None)
        amap = self.maps[ip.version]
        if length is not None and length < ip.max_prefixlen:
            net = ipaddress.ip_network(f"{ip}/{length}", strict=False)
            if not kept_address(net.network_address):
                return amap.stand_in(ip, length)
            return m.group(0) if kept_address(ip) else f"{amap.stand_in(ip, None)}/{length}"
        return m.group(0) if kept_address(ip) else amap.stand_in(ip, length)

    def _name_at(self, text: str, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` is a whole name: "*.img.shop.example" holds
        "img.shop.example", "vm.max_map_count" does not hold "vm"."""
        if self._word_char(text, start - 1):
            return False
        if text[start - 1 : start] == "." and self._word_char(text, start - 2):
            return False
        if self._word_char(text, end):
            return False
        dotted = "." in text[start:end]
        return dotted or not (text[end : end + 1] == "." and self._word_char(text, end + 1))

    def _rename(self, text: str) -> str:
        low = text.translate(ASCII_LOWER)  # same length as text, unlike str.lower()
        hits: dict[int, str] = {}
        for name in sorted(self.names, key=len, reverse=True):
            at = low.find(name)
            while at != -1:
                if at not in hits and self._name_at(text, at, at + len(name)):
                    hits[at] = name
                at = low.find(name, at + 1)
        out, done = [], 0
        for at in sorted(hits):
            if at >= done:
                out += [text[done:at], self.names[hits[at]]]
                done = at + len(hits[at])
        return "".join(out) + text[done:]

    def _sub_run(self, run: re.Match[str]) -> str:
        text, start, end = run.string, run.start(), run.end()
        if (self._word_char(text, start - 1) or text[start - 1 : start] == "."
                or self._word_char(text, end)):
            return run.group(0)
        new = self._done.get(run.group(0))
        if new is None:
            if len(self._done) > CACHE_LIMIT:
                self._done.clear()
            new = self._done[run.group(0)] = self._address.sub(self._sub, run.group(0))
        return new

    def rewrite(self, text: str) -> str:
        text = _CANDIDATE.sub(self._sub_run, text)
        return self._rename(text) if self.names else text

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

