"""Lab for the iptables tests: a server and a client namespace on a veth pair, a raw sender.

Namespaces are named ``hi`` + a random suffix and removed (with the sender process,
by PID) in :meth:`IptLab.close`. Traffic stays between the two namespaces on
192.0.2.0/24 (source addresses may be spoofed from 198.51.100.0/24 and 203.0.113.0/24;
the server runs with rp_filter off). The server never listens, so every packet sent
crosses the server's INPUT hook exactly once and its answers (RST, ICMP) leave via OUTPUT.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

SERVER_ADDRS = ("192.0.2.2", "192.0.2.3")
CLIENT_ADDR = "192.0.2.1"
CAN_RUN = os.geteuid() == 0 and all(shutil.which(b) for b in ("ip", "iptables-nft-restore"))
REASON = "needs root, ip and iptables (network namespaces)"

RAW_SENDER = r'''
import json, socket, struct, sys
FLAG_BITS = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32}
def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for line in sys.stdin:
    pkt = json.loads(line)
    s, d = socket.inet_aton(pkt["src"]), socket.inet_aton(pkt["dst"])
    if pkt["proto"] == "tcp":
        bits = sum(FLAG_BITS[f] for f in pkt["tcp_flags"])
        seg = struct.pack("!HHIIBBHHH", pkt["sport"], pkt["dport"], 4242, 0, 0x50, bits, 1024, 0, 0)
        proto, where = 6, 16
    else:
        seg = struct.pack("!HHHH", pkt["sport"], pkt["dport"], 12, 0) + b"hiho"
        proto, where = 17, 6
    csum = checksum(s + d + struct.pack("!BBH", 0, proto, len(seg)) + seg)
    seg = seg[:where] + struct.pack("!H", csum) + seg[where + 2:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 7, 0, 64, proto, 0, s, d)
    out.sendto(hdr + seg, (pkt["dst"], 0))
    print("sent", flush=True)
'''


def run(*argv: str, ns: str | None = None, stdin: str | None = None,
        check: bool = True) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


_COUNTED = re.compile(r"^\[(\d+):(\d+)\] -A (\S+)")
_POLICY = re.compile(r"^:(\S+) (ACCEPT|DROP) \[(\d+):(\d+)\]")


def counters(save_text: str, table: str = "filter") -> dict[tuple[str, int | str], int]:
    """(chain, position) -> packets, and (chain, "policy") -> packets, for one table.

    OUTPUT and POSTROUTING are left out: the server's answers (RST, ICMP) cross them."""
    out: dict[tuple[str, int | str], int] = {}
    pos: dict[str, int] = {}
    current = None
    for line in save_text.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        if current != table or line.startswith((":OUTPUT", ":POSTROUTING")):
            continue
        m = _COUNTED.match(line)
        if m and m.group(3) not in ("OUTPUT", "POSTROUTING"):
            chain = m.group(3)
            pos[chain] = pos.get(chain, 0) + 1
            out[(chain, pos[chain])] = int(m.group(1))
            continue
        m = _POLICY.match(line)
        if m:
            out[(m.group(1), "policy")] = int(m.group(3))
    return out


@dataclass
class IptLab:
    """A server/client namespace pair for one iptables backend ("nft" or "legacy")."""

    variant: str = "nft"
    server: str = field(default_factory=lambda: "hi" + secrets.token_hex(4))
    client: str = field(default_factory=lambda: "hi" + secrets.token_hex(4))
    sender: subprocess.Popen[str] | None = None

    @property
    def save_cmd(self) -> str:
        return f"iptables-{self.variant}-save"

    def start(self) -> IptLab:
        run("ip", "netns", "add", self.server)
        run("ip", "netns", "add", self.client)
        a, b = "hi" + secrets.token_hex(3), "hi" + secrets.token_hex(3)
        run("ip", "link", "add", a, "netns", self.server, "type", "veth", "peer", "name", b,
            "netns", self.client)
        for ns, dev, new in ((self.server, a, "hiv0"), (self.client, b, "hiv1")):
            run("ip", "link", "set", dev, "name", new, ns=ns)
            run("ip", "link", "set", new, "up", ns=ns)
            run("ip", "link", "set", "lo", "up", ns=ns)
            run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)
        for addr in SERVER_ADDRS:
            run("ip", "addr", "add", f"{addr}/24", "dev", "hiv0", ns=self.server)
        run("ip", "addr", "add", f"{CLIENT_ADDR}/24", "dev", "hiv1", ns=self.client)
        for key in ("all", "default", "hiv0"):
            run("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0", ns=self.server)
        # answers to spoofed sources leave the server towards the client, not nowhere
        run("ip", "route", "add", "default", "via", CLIENT_ADDR, ns=self.server)
        self.sender = subprocess.Popen(
            ["ip", "netns", "exec", self.client, sys.executable, "-u", "-c", RAW_SENDER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def load(self, dump: str) -> None:
        run(f"iptables-{self.variant}-restore", ns=self.server, stdin=dump)

    def save(self) -> str:
        return run(self.save_cmd, "-c", ns=self.server)

    def send(self, packet: dict[str, object], timeout: float = 2.0) -> dict[tuple[str, int | str], int]:
        """Send one packet; return the filter counters that moved (waits until one did)."""
        before = counters(self.save())
        assert self.sender is not None and self.sender.stdin and self.sender.stdout
        self.sender.stdin.write(json.dumps(packet) + "\n")
        self.sender.stdin.flush()
        assert self.sender.stdout.readline().strip() == "sent"
        deadline = time.monotonic() + timeout
        while True:
            after = counters(self.save())
            moved = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
            if moved or time.monotonic() > deadline:
                time.sleep(0.02)
                after = counters(self.save())
                return {k: v - before.get(k, 0) for k, v in after.items()
                        if v != before.get(k, 0)}
            time.sleep(0.01)

    def close(self) -> None:
        if self.sender is not None:
            if self.sender.stdin:
                self.sender.stdin.close()
            try:
                self.sender.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.sender.kill()
                self.sender.wait(timeout=5)
        for ns in (self.server, self.client):
            run("ip", "netns", "del", ns, check=False)


def legacy_usable() -> bool:
    """True when iptables-legacy works in a fresh namespace on this kernel."""
    if not shutil.which("iptables-legacy-restore"):
        return False
    ns = "hi" + secrets.token_hex(4)
    try:
        run("ip", "netns", "add", ns)
        run("iptables-legacy", "-w", "-L", "-n", ns=ns)
        return True
    except RuntimeError:
        return False
    finally:
        run("ip", "netns", "del", ns, check=False)
