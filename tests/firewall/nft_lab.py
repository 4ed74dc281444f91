"""Lab helpers for the nftables tests: namespaces, a raw packet sender, counter snapshots.

Every namespace is named ``hf`` + a random suffix and removed in ``NftLab.close``;
traffic stays on a veth pair between two namespaces (192.0.2.0/24, 198.51.100.0/24).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from typing import Any

CAN_RUN = os.geteuid() == 0 and shutil.which("nft") is not None and shutil.which("ip") is not None
REASON = "needs root, nft and ip (network namespaces)"

SENDER = r'''
import json, socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
FL = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ECE": 64, "CWR": 128}
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for line in sys.stdin:
    p = json.loads(line)
    src, dst = socket.inet_aton(p["src"]), socket.inet_aton(p["dst"])
    if p["proto"] == "tcp":
        flags = sum(FL[f] for f in p["flags"])
        l4 = struct.pack("!HHIIBBHHH", p["sport"], p["dport"], 1000, 0, 5 << 4, flags, 512, 0, 0)
        num = 6
    elif p["proto"] == "udp":
        l4 = struct.pack("!HHHH", p["sport"], p["dport"], 12, 0) + b"ping"
        num = 17
    else:
        l4 = struct.pack("!BBHHH", p.get("icmp_type", 8), 0, 0, 1, 1)
        l4 = l4[:2] + struct.pack("!H", csum(l4)) + l4[4:]
        num = 1
    if num in (6, 17):
        pseudo = src + dst + struct.pack("!BBH", 0, num, len(l4))
        c = csum(pseudo + l4)
        off = 16 if num == 6 else 6
        l4 = l4[:off] + struct.pack("!H", c) + l4[off + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, num, 0, src, dst)
    sock.sendto(ip + l4, (p["dst"], 0))
    print("ok", flush=True)
'''


def sh(*args: str, ns: str | None = None, input: str | None = None,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc


class NftLab:
    """A server namespace (192.0.2.1, 198.51.100.1) and a client sending raw IPv4 packets."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.server, self.client = f"hfs{tag}", f"hfc{tag}"
        self.sif, self.cif = f"hfa{tag}", f"hfb{tag}"
        self.sender: subprocess.Popen[str] | None = None
        self.made: list[str] = []
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        for ns in (self.server, self.client):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)
            sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", ns=ns)
            sh("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", ns=ns)
            sh("sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", self.sif, "netns", self.server, "type", "veth", "peer",
           "name", self.cif, "netns", self.client)
        sh("ip", "addr", "add", "192.0.2.1/24", "dev", self.sif, ns=self.server)
        sh("ip", "addr", "add", "198.51.100.1/24", "dev", self.sif, ns=self.server)
        sh("ip", "addr", "add", "192.0.2.2/24", "dev", self.cif, ns=self.client)
        sh("ip", "addr", "add", "198.51.100.2/24", "dev", self.cif, ns=self.client)
        for ns, dev in ((self.server, self.sif), (self.client, self.cif)):
            sh("sysctl", "-qw", f"net.ipv4.conf.{dev}.rp_filter=0", ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
        self.sender = subprocess.Popen(
            ["ip", "netns", "exec", self.client, sys.executable, "-c", SENDER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def load(self, ruleset: str) -> None:
        """Replace the server's ruleset (a sentinel table counts every arriving packet)."""
        sentinel = ("table ip hfsentinel {\n chain pre {\n"
                    "  type filter hook prerouting priority -400; policy accept;\n"
                    "  counter\n }\n}\n")
        sh("nft", "flush", "ruleset", ns=self.server)
        sh("nft", "-f", "-", ns=self.server, input=sentinel + ruleset)

    def dump(self) -> str:
        return sh("nft", "-j", "list", "ruleset", ns=self.server).stdout

    def counters(self) -> dict[tuple[str, str, str, int], int]:
        out = {}
        for o in json.loads(self.dump())["nftables"]:
            r = o.get("rule")
            if not r:
                continue
            for s in r["expr"]:
                if isinstance(s, dict) and isinstance(s.get("counter"), dict):
                    out[(r["family"], r["table"], r["chain"], r["handle"])] = s["counter"]["packets"]
        return out

    def send(self, pkt: dict[str, Any]) -> set[tuple[str, str, str, int]]:
        """Send one packet; the rules whose counters moved (the sentinel's excluded)."""
        assert self.sender and self.sender.stdin and self.sender.stdout
        before = self.counters()
        self.sender.stdin.write(json.dumps(pkt) + "\n")
        self.sender.stdin.flush()
        assert self.sender.stdout.readline().strip() == "ok"
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            after = self.counters()
            moved = {k for k, v in after.items() if v > before.get(k, 0)}
            if any(k[1] == "hfsentinel" for k in moved):
                time.sleep(0.03)
                after = self.counters()
                return {k for k, v in after.items()
                        if v > before.get(k, 0) and k[1] != "hfsentinel"}
            time.sleep(0.01)
        raise AssertionError(f"packet {pkt} never reached the server")

    def close(self) -> None:
        if self.sender is not None:
            if self.sender.stdin:
                self.sender.stdin.close()
            try:
                self.sender.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.sender.kill()
                self.sender.wait(timeout=5)
        for ns in self.made:
            sh("ip", "netns", "del", ns, check=False)
