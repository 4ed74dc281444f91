"""Shared plumbing of the firewall labs: commands in namespaces, a veth pair, a raw sender.

:func:`sh` runs a command, inside a namespace when ``ns`` is given. :class:`VethPair`
creates a server and a client namespace joined by a veth pair, gives them their
addresses, turns IPv6 and reverse-path filtering off (sources may be spoofed), and
starts :data:`RAW_SENDER` in the client: it writes hand-built IPv4 TCP, UDP and ICMP
packets, one JSON object per stdin line, and answers ``sent`` for each.
:meth:`VethPair.close` stops the sender through its own process handle and deletes the
namespaces the pair made. Traffic stays on the veth pair, within 192.0.2.0/24,
198.51.100.0/24 and 203.0.113.0/24. Used by ``hi_lab`` (iptables) and ``nft_lab``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RAW_SENDER = r'''
import json, socket, struct, sys
FLAG_BITS = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ECE": 64,
             "CWR": 128}
def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
out.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x5E)  # the client lets only these out
for line in sys.stdin:
    pkt = json.loads(line)
    s, d = socket.inet_aton(pkt["src"]), socket.inet_aton(pkt["dst"])
    if pkt["proto"] == "tcp":
        bits = sum(FLAG_BITS[f] for f in pkt.get("tcp_flags") or pkt.get("flags") or ())
        seg = struct.pack("!HHIIBBHHH", pkt["sport"], pkt["dport"], 4242, 0, 0x50, bits, 1024, 0, 0)
        proto, where = 6, 16
    elif pkt["proto"] == "udp":
        seg = struct.pack("!HHHH", pkt["sport"], pkt["dport"], 12, 0) + b"hiho"
        proto, where = 17, 6
    else:
        seg = struct.pack("!BBHHH", pkt.get("icmp_type") or 8, 0, 0, 1, 1)
        proto, where = 1, None
    if where is None:
        seg = seg[:2] + struct.pack("!H", checksum(seg)) + seg[4:]
    else:
        csum = checksum(s + d + struct.pack("!BBH", 0, proto, len(seg)) + seg)
        seg = seg[:where] + struct.pack("!H", csum) + seg[where + 2:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 7, 0, 64, proto, 0, s, d)
    out.sendto(hdr + seg, (pkt["dst"], 0))
    print("sent", flush=True)
'''


QUIET_CLIENT = """table inet quiet {
  chain out { type filter hook output priority 0; policy accept; meta mark != 0x5e drop; }
}
"""


def sh(*args: str, ns: str | None = None, input: str | None = None,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (in namespace ``ns``); RuntimeError naming it when it fails and ``check``."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc


def new_name(prefix: str, nbytes: int = 3) -> str:
    """A namespace or interface name: the lab's prefix and a random suffix."""
    return prefix + secrets.token_hex(nbytes)


@dataclass
class VethPair:
    """Two namespaces on a veth pair; addresses are ``addr/len``; call :meth:`start`."""

    prefix: str
    server_if: str
    client_if: str
    server_addrs: Sequence[str]
    client_addrs: Sequence[str]
    route_via: str | None = None  # the server's default route (answers to spoofed sources)
    server: str = ""
    client: str = ""
    sender: subprocess.Popen[str] | None = None
    made: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = self.server or new_name(self.prefix)
        self.client = self.client or new_name(self.prefix)

    def start(self) -> VethPair:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self) -> None:
        for ns in (self.server, self.client):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            for key in ("ipv6.conf.all.disable_ipv6=1", "ipv6.conf.default.disable_ipv6=1",
                        "ipv4.conf.all.rp_filter=0", "ipv4.conf.default.rp_filter=0"):
                sh("sysctl", "-qw", f"net.{key}", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        a, b = new_name(self.prefix), new_name(self.prefix)  # unique while in the root ns
        sh("ip", "link", "add", a, "netns", self.server, "type", "veth", "peer", "name", b,
           "netns", self.client)
        for ns, tmp, dev, addrs in ((self.server, a, self.server_if, self.server_addrs),
                                    (self.client, b, self.client_if, self.client_addrs)):
            if dev != tmp:
                sh("ip", "link", "set", tmp, "name", dev, ns=ns)
            for addr in addrs:
                sh("ip", "addr", "add", addr, "dev", dev, ns=ns)
            sh("sysctl", "-qw", f"net.ipv4.conf.{dev}.rp_filter=0", ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
        if self.route_via:
            sh("ip", "route", "add", "default", "via", self.route_via, ns=self.server)
        # The client sends the test's packets and nothing else: its kernel's own answers
        # (a RST to a SYN-ACK it never asked for, ICMP errors) would move the server's
        # counters between two packets and make the kernel oracle disagree by chance.
        sh("nft", "-f", "-", ns=self.client, input=QUIET_CLIENT)
        self.sender = subprocess.Popen(
            ["ip", "netns", "exec", self.client, sys.executable, "-u", "-c", RAW_SENDER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send_raw(self, packet: Mapping[str, Any]) -> None:
        """Send one packet from the client (keys: src dst proto sport dport tcp_flags|flags)."""
        assert self.sender is not None and self.sender.stdin and self.sender.stdout
        self.sender.stdin.write(json.dumps(packet) + "\n")
        self.sender.stdin.flush()
        assert self.sender.stdout.readline().strip() == "sent"

    def close(self) -> None:
        if self.sender is not None:
            if self.sender.stdin:
                self.sender.stdin.close()
            try:
                self.sender.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.sender.kill()
                self.sender.wait(timeout=5)
            self.sender = None
        for ns in self.made:
            sh("ip", "netns", "del", ns, check=False)
        self.made.clear()
