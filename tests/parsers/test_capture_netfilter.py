"""Real capture: netfilter LOG lines written by this kernel, read back with dmesg and parsed.

Two network namespaces joined by a veth pair (198.51.100.0/24). The server side
has an iptables LOG + REJECT --reject-with tcp-reset rule and an nft
``log prefix ... reject with tcp reset`` rule, each with a random prefix.
The client sends a few real SYNs; the kernel logs them (``nf_log_all_netns=1``,
restored afterwards) and answers with RSTs. The lines are parsed as ``dmesg``
output, with and without a boot time, and as ``dmesg --time-format iso``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.models import Event
from auditor.parsers.base import ParseContext
from auditor.parsers.kernel import KernelParser
from auditor.sources.scan import ScanStats, scan

SYSCTL = Path("/proc/sys/net/netfilter/nf_log_all_netns")
TOOLS = ("ip", "iptables", "nft", "dmesg")
SERVER, CLIENT = "198.51.100.1", "198.51.100.2"
IPT_PORT, NFT_PORT = 8081, 8082
SYNS_PER_PORT = 2

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, netfilter)"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"
    ),
]


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


CLIENT_SCRIPT = """
import socket, sys
results = []
for port in (int(sys.argv[1]), int(sys.argv[2])):
    for _ in range(int(sys.argv[3])):
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect((sys.argv[4], port))
            results.append("connected")
        except ConnectionRefusedError:
            results.append("reset")
        except OSError as exc:
            results.append(type(exc).__name__)
        finally:
            s.close()
print(" ".join(results))
"""


@pytest.fixture()
def lab() -> Iterator[dict[str, str]]:
    tag = "hk" + secrets.token_hex(3)
    srv, cli = f"{tag}s", f"{tag}c"
    old = SYSCTL.read_text().strip() if SYSCTL.exists() else None
    made: list[str] = []
    try:
        for ns in (srv, cli):
            run("ip", "netns", "add", ns)
            made.append(ns)
        run("ip", "link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        run("ip", "link", "set", f"{tag}a", "netns", srv)
        run("ip", "link", "set", f"{tag}b", "netns", cli)
        for ns, dev, addr in ((srv, f"{tag}a", SERVER), (cli, f"{tag}b", CLIENT)):
            run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        if old is None:
            pytest.skip("kernel has no net.netfilter.nf_log_all_netns")
        SYSCTL.write_text("1\n")
        ipt_prefix, nft_prefix = f"{tag}-ipt REJECT: ", f"{tag}-nft REJECT: "
        ipt = ("ip", "netns", "exec", srv, "iptables")
        run(*ipt, "-A", "INPUT", "-p", "tcp", "--dport", str(IPT_PORT),
            "-j", "LOG", "--log-prefix", ipt_prefix)
        run(*ipt, "-A", "INPUT", "-p", "tcp", "--dport", str(IPT_PORT),
            "-j", "REJECT", "--reject-with", "tcp-reset")
        ruleset = (
            f"table inet {tag} {{\n chain input {{\n type filter hook input priority 10;\n"
            f'  tcp dport {NFT_PORT} log prefix "{nft_prefix}" reject with tcp reset\n }}\n}}\n'
        )
        run("ip", "netns", "exec", srv, "nft", "-f", "-", stdin=ruleset)
        yield {"tag": tag, "srv": srv, "cli": cli, "ipt": ipt_prefix, "nft": nft_prefix}
    finally:
        if old is not None:
            SYSCTL.write_text(old + "\n")
        for ns in made:
            subprocess.run(("ip", "netns", "del", ns), capture_output=True, timeout=30, check=False)


def kernel_lines(tag: str, want: int, *fmt: str) -> list[str]:
    """dmesg lines carrying ``tag``; waits (bounded) until ``want`` of them arrived."""
    lines: list[str] = []
    for _ in range(25):
        out = run("dmesg", *fmt)
        lines = [line for line in out.splitlines() if tag in line]
        if len(lines) >= want:
            break
        time.sleep(0.2)
    return lines


def parse(lines: list[str], tmp_path: Path, ctx: ParseContext) -> tuple[list[Event], ScanStats]:
    path = tmp_path / "dmesg.log"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    stats = ScanStats(str(path), "kernel")
    events = list(scan(str(path), KernelParser(ctx, str(path)), stats))
    return events, stats


def boot_time() -> datetime:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), UTC)
    raise AssertionError("no btime in /proc/stat")


def test_real_kernel_log_lines(lab: dict[str, str], tmp_path: Path) -> None:
    start = datetime.now(UTC)
    out = run(
        "ip", "netns", "exec", lab["cli"], sys.executable, "-c", CLIENT_SCRIPT,
        str(IPT_PORT), str(NFT_PORT), str(SYNS_PER_PORT), SERVER,
    )
    # The REJECT rules answered every SYN with a RST: that is what the log explains.
    assert out.split() == ["reset"] * (2 * SYNS_PER_PORT), out
    lines = kernel_lines(lab["tag"], 2 * SYNS_PER_PORT)
    assert len(lines) >= 2 * SYNS_PER_PORT, f"kernel logged {lines!r}"

    events, stats = parse(lines, tmp_path, ParseContext())
    assert stats.not_understood == 0, stats.issues
    assert len(events) == len(lines)
    by_rule: dict[str | None, list[Event]] = {}
    for event in events:
        by_rule.setdefault(event.rule_name, []).append(event)
    assert set(by_rule) == {lab["ipt"].strip(), lab["nft"].strip()}
    for prefix, port in ((lab["ipt"], IPT_PORT), (lab["nft"], NFT_PORT)):
        for event in by_rule[prefix.strip()]:
            assert event.action == "firewall-reject"
            assert event.source_ip == CLIENT and event.destination_ip == SERVER
            assert event.destination_port == port
            assert event.source_port is not None and event.source_port >= 1024
            assert event.transport == "tcp" and event.network_type == "ipv4"
            assert event.extra["tcp_flags"] == ("SYN",)
            assert event.ingress_interface == f"{lab['tag']}a"
            assert event.source_mac is not None
            assert event.time_relative is True
            assert event.extra["uptime"] > 0

    # With the boot time known, the same lines land at absolute instants.
    boot = boot_time()
    events, _ = parse(lines, tmp_path, ParseContext(boot_time=boot))
    for event in events:
        assert not event.time_relative
        assert start - timedelta(minutes=5) <= event.timestamp <= datetime.now(UTC) + timedelta(
            minutes=5
        )

    # dmesg --time-format iso: wall-clock stamps with a zone.
    iso = kernel_lines(lab["tag"], 2 * SYNS_PER_PORT, "--time-format", "iso")
    events, stats = parse(iso, tmp_path, ParseContext())
    assert stats.not_understood == 0, stats.issues
    assert {e.rule_name for e in events} == {lab["ipt"].strip(), lab["nft"].strip()}
    assert all(not e.time_relative and e.action == "firewall-reject" for e in events)


def test_live_collection_finds_the_kernel_lines(lab: dict[str, str], tmp_path: Path) -> None:
    """``collect``/live ``diagnose`` read the kernel log from the journal, a kern.log, or
    (neither present, as in containers) the ring buffer: the lines must be in the bundle."""
    from auditor.bundle.collect import Collector
    from auditor.bundle.logs import collect_logs

    run("ip", "netns", "exec", lab["cli"], sys.executable, "-c", CLIENT_SCRIPT,
        str(IPT_PORT), str(NFT_PORT), "1", SERVER)
    assert len(kernel_lines(lab["tag"], 2)) >= 2
    col = Collector(str(tmp_path / "bundle"))
    lines: list[str] = []
    for _ in range(25):  # journald or rsyslog may write the lines a moment later
        collect_logs(col, timedelta(minutes=10), None)
        logs = [p for p in (tmp_path / "bundle" / "logs").rglob("*") if p.is_file()]
        lines = [ln for p in logs for ln in p.read_text(errors="replace").splitlines()
                 if lab["tag"] in ln]
        if len(lines) >= 2:
            break
        time.sleep(0.2)
    assert len(lines) >= 2, f"no kernel lines collected; missing: {col.missing}"
