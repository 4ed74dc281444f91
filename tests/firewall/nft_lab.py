"""Lab helpers for the nftables tests: namespaces, a raw packet sender, counter snapshots.

Every namespace is named ``hf`` + a random suffix and removed in ``NftLab.close``;
traffic stays on a veth pair between two namespaces (192.0.2.0/24, 198.51.100.0/24).
The namespace pair and the raw sender are :class:`netns_lab.VethPair`'s.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from typing import Any

from netns_lab import VethPair, sh

__all__ = ["CAN_RUN", "REASON", "NftLab", "sh"]

CAN_RUN = os.geteuid() == 0 and shutil.which("nft") is not None and shutil.which("ip") is not None
REASON = "needs root, nft and ip (network namespaces)"


class NftLab:
    """A server namespace (192.0.2.1, 198.51.100.1) and a client sending raw IPv4 packets."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.sif, self.cif = f"hfa{tag}", f"hfb{tag}"
        self.pair = VethPair("hf", self.sif, self.cif, ["192.0.2.1/24", "198.51.100.1/24"],
                             ["192.0.2.2/24", "198.51.100.2/24"],
                             server=f"hfs{tag}", client=f"hfc{tag}").start()
        self.server, self.client = self.pair.server, self.pair.client

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
        before = self.counters()
        self.pair.send_raw(pkt)
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
        self.pair.close()
