"""Lab for the iptables tests: a server and a client namespace on a veth pair, a raw sender.

Namespaces are named ``hi`` + a random suffix and removed (with the sender process)
in :meth:`IptLab.close`; the namespace pair and the raw sender are
:class:`netns_lab.VethPair`'s. Traffic stays between the two namespaces on
192.0.2.0/24 (source addresses may be spoofed from 198.51.100.0/24 and 203.0.113.0/24;
the server runs with rp_filter off). The server never listens, so every packet sent
crosses the server's INPUT hook exactly once and its answers (RST, ICMP) leave via OUTPUT.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field

from netns_lab import VethPair, sh

SERVER_ADDRS = ("192.0.2.2", "192.0.2.3")
CLIENT_ADDR = "192.0.2.1"
CAN_RUN = os.geteuid() == 0 and all(shutil.which(b) for b in ("ip", "iptables-nft-restore", "nft"))
REASON = "needs root, ip, iptables and nft (network namespaces)"


def run(*argv: str, ns: str | None = None, stdin: str | None = None,
        check: bool = True) -> str:
    """A command's stdout (inside namespace ``ns``); RuntimeError when it fails and ``check``."""
    return sh(*argv, ns=ns, input=stdin, check=check).stdout


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
    pair: VethPair | None = None

    @property
    def save_cmd(self) -> str:
        return f"iptables-{self.variant}-save"

    def start(self) -> IptLab:
        self.pair = VethPair("hi", "hiv0", "hiv1", [f"{a}/24" for a in SERVER_ADDRS],
                             [f"{CLIENT_ADDR}/24"], route_via=CLIENT_ADDR,
                             server=self.server, client=self.client).start()
        return self

    def load(self, dump: str) -> None:
        run(f"iptables-{self.variant}-restore", ns=self.server, stdin=dump)

    def save(self) -> str:
        return run(self.save_cmd, "-c", ns=self.server)

    def send(self, packet: dict[str, object], timeout: float = 2.0) -> dict[tuple[str, int | str], int]:
        """Send one packet; return the filter counters that moved (waits until one did)."""
        before = counters(self.save())
        assert self.pair is not None, "start() the lab first"
        self.pair.send_raw(packet)
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
        if self.pair is not None:
            self.pair.close()
        else:
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


def variants() -> list[object]:
    """pytest params for the iptables variants: nft always, legacy where the kernel has it."""
    import pytest

    return ["nft", pytest.param("legacy", marks=pytest.mark.skipif(
        CAN_RUN and not legacy_usable(), reason="kernel offers no iptables-legacy"))]
